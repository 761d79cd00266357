"""File inputs: local paths, file:// URIs and ObjectStoragePaths are checked, then uploaded to Kie once."""

from __future__ import annotations

import subprocess
import sys

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_kie import inputs
from airflow_provider_kie.emulator.images import result_png
from airflow_provider_kie.operators.kie import KieCreateTaskOperator
from airflow_provider_kie.operators.seedream import SeedreamEditOperator
from tests.support import FakeTI

pytestmark = pytest.mark.usefixtures("fast_kie")


def edit(image_urls, **kwargs):
    return SeedreamEditOperator(
        task_id="edit", prompt="Make it water", image_urls=image_urls, poll_interval=0.05, **kwargs
    )


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "in.png"
    path.write_bytes(result_png("input image", size=32))
    return path


def sent_image_urls(kie_emulator):
    return [r.body["input"]["image_urls"] for r in kie_emulator.requests if r.endpoint == "createTask"]


@pytest.mark.parametrize("as_given", ["path", "file uri", "ObjectStoragePath"])
def test_a_local_image_is_uploaded_and_its_url_sent(kie_emulator, png, as_given):
    item = {
        "path": str(png),
        "file uri": f"file://{png}",
        "ObjectStoragePath": ObjectStoragePath(f"file://{png}"),
    }
    edit([item[as_given], "https://a/b.png"]).execute({"ti": FakeTI()})
    (sent,) = sent_image_urls(kie_emulator)
    assert sent[1] == "https://a/b.png"  # http(s) URLs go as they are
    assert sent[0].startswith(f"{kie_emulator.url}/files/uploads/{inputs.UPLOAD_PATH}/")
    uploaded = kie_emulator.state.files[sent[0].removeprefix(f"{kie_emulator.url}/files/")]
    assert uploaded == (png.read_bytes(), "image/png")


def test_one_upload_per_content_across_tasks_and_repeats(kie_emulator, png, tmp_path):
    copy = tmp_path / "same-content.png"
    copy.write_bytes(png.read_bytes())
    edit([str(png), str(copy), str(png)]).execute({"ti": FakeTI()})
    edit([str(png)]).execute({"ti": FakeTI()})  # another task, same machine
    assert kie_emulator.count("upload") == 1
    assert kie_emulator.count("createTask") == 2
    first, second = sent_image_urls(kie_emulator)
    assert len(set(first)) == 1 and second == first[:1]


def test_an_upload_older_than_a_day_is_not_reused(kie_emulator, png, monkeypatch):
    edit([str(png)]).execute({"ti": FakeTI()})
    monkeypatch.setattr(inputs, "REUSE_FOR", 0.0)
    edit([str(png)]).execute({"ti": FakeTI()})
    assert kie_emulator.count("upload") == 2


def test_concurrent_processes_make_one_upload(tmp_path):
    # Eight processes ask for the same content at once: the lock makes seven wait for the first.
    script = f"""
import sys, time
from pathlib import Path
from airflow_provider_kie.inputs import UploadCache

def upload():
    with open({str(tmp_path / "uploads.log")!r}, "a") as log:
        log.write("upload\\n")
    time.sleep(0.3)
    return "https://kie.example/uploaded.png"

print(UploadCache("https://uploads.example", folder={str(tmp_path / "cache")!r}).url_for("ab" * 32, upload))
"""
    processes = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(8)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in processes]
    assert outputs == ["https://kie.example/uploaded.png"] * 8
    assert (tmp_path / "uploads.log").read_text().count("upload") == 1


def test_a_reconnecting_retry_uploads_nothing(kie_emulator, png):
    # Uploads happen only when a task is submitted: a retry that resumes a Kie task needs none.
    from tests.support import AIRFLOW_33, DictStateStore

    if not AIRFLOW_33:
        pytest.skip("task_state_store arrived in Airflow 3.3")
    store = DictStateStore()
    edit([str(png)], wait_for_completion=False).execute({"ti": FakeTI(), "task_state_store": store})
    kie_emulator.state.files.clear()
    edit([str(png)], wait_for_completion=False).execute({"ti": FakeTI(), "task_state_store": store})
    assert kie_emulator.count("upload") == 1 and kie_emulator.count("createTask") == 1


@pytest.mark.parametrize("fault", ["500-http", "502-html", "503-http"])
def test_an_upload_that_meets_a_5xx_is_sent_again(kie_emulator, png, fault, request):
    request.node.add_marker(
        pytest.mark.fault(
            fault=f"{fault} on a file upload",
            where="worker, File Upload API",
            expected="the upload is sent again (it is idempotent); one createTask with the upload's URL",
        )
    )
    kie_emulator.add_fault(fault, "upload")
    edit([str(png)]).execute({"ti": FakeTI()})
    assert kie_emulator.count("upload") == 2 and kie_emulator.count("createTask") == 1
    ((sent,),) = sent_image_urls(kie_emulator)
    assert kie_emulator.state.files[sent.removeprefix(f"{kie_emulator.url}/files/")][0] == png.read_bytes()


def test_every_file_field_of_a_video_model_takes_local_files_single_or_listed(kie_emulator, png, tmp_path):
    """kling/v2-1-pro: ``image_url`` and ``tail_image_url`` take one file each (not a list)."""
    clip = tmp_path / "voice.mp3"
    clip.write_bytes(b"ID3\x03\x00" + b"\0" * 64)
    KieCreateTaskOperator(
        task_id="animate",
        model="kling/v2-1-pro",
        input={"prompt": "slow dolly-in", "image_url": str(png), "tail_image_url": f"file://{png}"},
    ).execute({"ti": FakeTI()})
    (sent,) = [r.body["input"] for r in kie_emulator.requests if r.endpoint == "createTask"]
    assert sent["image_url"] == sent["tail_image_url"]  # one upload for one content
    assert sent["image_url"].startswith(f"{kie_emulator.url}/files/uploads/")
    assert kie_emulator.count("upload") == 1
    audio = {"image_url": str(png), "audio_url": str(clip), "prompt": "say hello"}
    KieCreateTaskOperator(task_id="avatar", model="kling/ai-avatar-standard", input=audio).execute(
        {"ti": FakeTI()}
    )
    uploaded = [r.body for r in kie_emulator.requests if r.endpoint == "createTask"][-1]["input"]["audio_url"]
    assert kie_emulator.state.files[uploaded.removeprefix(f"{kie_emulator.url}/files/")][1] == "audio/mpeg"
