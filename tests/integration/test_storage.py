"""output_path: results streamed from Kie into object storage, atomically, with a manifest, once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_kie import models, storage
from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.exceptions import KieStorageError
from airflow_provider_kie.hooks.sessions import close_shared_async_sessions
from airflow_provider_kie.operators.kie import KieCreateTaskOperator
from airflow_provider_kie.operators.seedream import SeedreamEditOperator
from tests.catalog_cases import minimal_input
from tests.support import AIRFLOW_33, DictStateStore, FakeTI

pytestmark = pytest.mark.usefixtures("fast_kie")


def edit(**kwargs):
    return SeedreamEditOperator(
        task_id="edit", prompt="Make it water", image_urls=["https://a/b.png"], poll_interval=0.05, **kwargs
    )


def stored_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_results_are_copied_with_a_manifest_and_returned_as_uris(kie_emulator, tmp_path):
    ctx = {"ti": FakeTI()}
    uris = edit(output_path=str(tmp_path)).execute(ctx)
    (kie_task_id,) = kie_emulator.state.tasks
    assert uris == [f"file://{tmp_path}/{kie_task_id}-0.png"]
    assert stored_files(tmp_path) == [f"{kie_task_id}-0.png", f"{kie_task_id}.json"]
    assert (tmp_path / f"{kie_task_id}-0.png").read_bytes().startswith(b"\x89PNG")
    manifest = json.loads((tmp_path / f"{kie_task_id}.json").read_text())
    assert manifest["kie_task_id"] == kie_task_id and manifest["model"] == "seedream/4.5-edit"
    assert manifest["input"]["prompt"] == "Make it water" and manifest["stored"] == uris
    assert manifest["kie_urls"] == ctx["ti"].xcom["kie_task"]["result_urls"]  # Kie's URLs stay in kie_task
    assert manifest["credits_consumed"] == 6.0


def test_a_deferred_task_is_copied_by_the_trigger_off_the_event_loop(
    kie_emulator, tmp_path, triggerer_xcom, monkeypatch
):
    loop_threads, copy_threads = set(), set()
    real_write = storage.AtomicFile.write

    def write(file, data):
        copy_threads.add(threading.get_ident())
        real_write(file, data)

    monkeypatch.setattr(storage.AtomicFile, "write", write)
    kie_emulator.config.result_bytes = 3 * storage.CHUNK_BYTES + 5  # several chunks, streamed
    operator = edit(output_path=str(tmp_path), deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": FakeTI()})
    trigger = deferred.value.trigger
    assert trigger.serialize()[1]["end_from_trigger"] is True  # no worker needed for the copy
    assert trigger.serialize()[1]["output_path"] == f"file://{tmp_path}"

    async def run_and_note_loop_thread():
        loop_threads.add(threading.get_ident())
        try:
            async for event in trigger.run():
                return event
        finally:
            await close_shared_async_sessions()

    event = asyncio.run(run_and_note_loop_thread())
    (kie_task_id,) = kie_emulator.state.tasks
    uris = [f"file://{tmp_path}/{kie_task_id}-0.png"]
    (done,) = event.payload["outcomes"]
    assert done["result"] == uris and done["stored"]
    assert (tmp_path / f"{kie_task_id}-0.png").stat().st_size == 3 * storage.CHUNK_BYTES + 5
    assert copy_threads and not copy_threads & loop_threads  # every write ran off the loop's thread
    (tmp_path / f"{kie_task_id}.json").unlink()  # the worker that resumes must not copy again
    assert edit(output_path=str(tmp_path)).execute_complete({"ti": FakeTI()}, event.payload) == uris
    assert not (tmp_path / f"{kie_task_id}.json").exists()


@pytest.mark.skipif(not AIRFLOW_33, reason="task_state_store arrived in Airflow 3.3")
@pytest.mark.fault(
    fault="result download reset mid-file",
    where="triggerer (deferrable)",
    expected="the task retries; the retry finishes the copy from the same Kie task, no new createTask",
)
def test_a_download_cut_in_the_triggerer_is_finished_by_the_retry(kie_emulator, tmp_path, triggerer_xcom):
    kie_emulator.add_fault("cut-body", "file")
    store = DictStateStore()
    with pytest.raises(TaskDeferred) as deferred:
        edit(output_path=str(tmp_path), deferrable=True).execute({"ti": FakeTI(), "task_state_store": store})
    event = triggerer_xcom.run_in_triggerer(deferred.value.trigger)
    (cut,) = event.payload["outcomes"]
    assert cut["status"] == "error" and not cut["stored"]
    ctx = {"ti": FakeTI(), "task_state_store": store}
    with pytest.raises(KieStorageError):
        edit(output_path=str(tmp_path), deferrable=True).execute_complete(ctx, event.payload)
    assert stored_files(tmp_path) == []  # no half file under any name
    with pytest.raises(TaskDeferred) as again:  # the retry waits for the same Kie task, then copies
        edit(output_path=str(tmp_path), deferrable=True).execute({"ti": FakeTI(), "task_state_store": store})
    triggerer_xcom.run_in_triggerer(again.value.trigger)
    (kie_task_id,) = kie_emulator.state.tasks
    uris = triggerer_xcom["return_value"]
    assert uris == [f"file://{tmp_path}/{kie_task_id}-0.png"] and kie_emulator.count("createTask") == 1


@pytest.mark.skipif(not AIRFLOW_33, reason="task_state_store arrived in Airflow 3.3")
@pytest.mark.fault(
    fault="copy to output_path fails mid-file",
    where="worker (non-deferrable)",
    expected="the retry finishes the copy from the same Kie task, no new createTask",
)
def test_a_failed_copy_is_finished_by_the_retry_without_paying_again(kie_emulator, tmp_path, monkeypatch):
    store = DictStateStore()
    real_write = storage.AtomicFile.write
    writes = []

    def write_once_then_fail(file, data):
        writes.append(len(data))
        if len(writes) > 1:
            raise OSError("disk unplugged")
        real_write(file, data)

    kie_emulator.config.result_bytes = 64 * 1024
    with monkeypatch.context() as patch:
        patch.setattr(storage, "CHUNK_BYTES", 4096)  # the result spans several writes
        patch.setattr(storage.AtomicFile, "write", write_once_then_fail)
        with pytest.raises(KieStorageError, match="disk unplugged"):
            edit(output_path=str(tmp_path)).execute({"ti": FakeTI(), "task_state_store": store})
    assert stored_files(tmp_path) == []  # nothing half-written under a final name, no partial left
    uris = edit(output_path=str(tmp_path)).execute({"ti": FakeTI(), "task_state_store": store})
    assert kie_emulator.count("createTask") == 1
    (kie_task_id,) = kie_emulator.state.tasks
    assert uris == [f"file://{tmp_path}/{kie_task_id}-0.png"]


def test_a_file_already_stored_is_kept_not_downloaded_again(kie_emulator, tmp_path):
    task = KieTask("abc", TaskState.SUCCESS, result_urls=(f"{kie_emulator.url}/files/none.png",))
    (tmp_path / "abc-0.png").write_bytes(b"\x89PNG stored before")
    assert storage.persist(task, storage.as_path(str(tmp_path))) == [f"file://{tmp_path}/abc-0.png"]
    assert (tmp_path / "abc-0.png").read_bytes() == b"\x89PNG stored before"


def test_a_missing_result_is_a_retryable_storage_error(kie_emulator, tmp_path):
    task = KieTask("abc", TaskState.SUCCESS, result_urls=(f"{kie_emulator.url}/files/none.png",))
    with pytest.raises(KieStorageError, match="404") as info:
        storage.persist(task, storage.as_path(str(tmp_path)))
    assert info.value.retryable and stored_files(tmp_path) == []


@pytest.mark.parametrize(
    ("content_type", "url", "expected"),
    [
        ("image/png", "https://x/a", "png"),
        ("image/jpeg; charset=binary", "https://x/a.png", "jpg"),
        ("application/octet-stream", "https://x/a.webp?token=1", "webp"),
        (None, "https://x/a", "bin"),
    ],
)
def test_extension_from_content_type_then_url(content_type, url, expected):
    assert storage.extension(content_type, url) == expected


def test_asset_events_carry_what_was_made(kie_emulator, tmp_path):
    class Event:
        def __init__(self):
            self.extra = {}

    events = {"asset": Event()}
    operator = edit(output_path=str(tmp_path))
    operator.outlets = ["asset"]
    uris = operator.execute({"ti": FakeTI(), "task": operator, "outlet_events": events})
    (kie_task_id,) = kie_emulator.state.tasks
    extra = events["asset"].extra
    assert (
        extra["kie_task_ids"] == [kie_task_id]
        and extra["stored"] == uris
        and extra["credits_consumed"] == 6.0
    )
    assert extra["kind"] == "image" and extra["failed_jobs"] == []


def test_a_copy_removes_what_a_copy_killed_mid_file_left(kie_emulator, tmp_path):
    ctx = {"ti": FakeTI()}
    edit().execute(ctx)
    task = KieTask.from_dict(ctx["ti"].xcom["kie_task"])
    (tmp_path / f".{task.kie_task_id}-0.png.partial-0123").write_bytes(b"\x89PNG half")
    (tmp_path / f".{task.kie_task_id}.json.partial-4567").write_bytes(b'{"kie_task_id": ')  # mid-manifest
    assert storage.persist(task, storage.as_path(str(tmp_path))) == [
        f"file://{tmp_path}/{task.kie_task_id}-0.png"
    ]
    assert stored_files(tmp_path) == [f"{task.kie_task_id}-0.png", f"{task.kie_task_id}.json"]


@pytest.mark.skipif(not AIRFLOW_33, reason="task_state_store arrived in Airflow 3.3")
@pytest.mark.fault(
    fault="output_path unwritable when the results arrive (a full disk, a folder replaced)",
    where="triggerer (deferrable)",
    expected="the task retries; once the folder takes files the retry stores them, no new createTask",
)
def test_a_folder_unwritable_at_copy_time_is_a_retry_not_a_new_task(kie_emulator, tmp_path, triggerer_xcom):
    folder, store = tmp_path / "out", DictStateStore()
    with pytest.raises(TaskDeferred) as deferred:
        edit(output_path=str(folder), deferrable=True).execute({"ti": FakeTI(), "task_state_store": store})
    folder.rmdir()
    folder.write_text("not a folder any more")  # checked at defer time, gone when the results arrive
    event = triggerer_xcom.run_in_triggerer(deferred.value.trigger)
    (failed,) = event.payload["outcomes"]
    assert failed["status"] == "error" and failed["cause"]["error_class"] == "KieStorageError"
    with pytest.raises(KieStorageError):
        edit(output_path=str(folder), deferrable=True).execute_complete(
            {"ti": FakeTI(), "task_state_store": store}, event.payload
        )
    folder.unlink()
    with pytest.raises(TaskDeferred) as again:  # the retry waits for the same Kie task, then copies
        edit(output_path=str(folder), deferrable=True).execute({"ti": FakeTI(), "task_state_store": store})
    triggerer_xcom.run_in_triggerer(again.value.trigger)
    (kie_task_id,) = kie_emulator.state.tasks
    uris = triggerer_xcom["return_value"]
    assert uris == [f"file://{folder}/{kie_task_id}-0.png"] and kie_emulator.count("createTask") == 1


def test_a_video_is_stored_with_its_kind_type_size_and_hash_in_the_manifest(kie_emulator, tmp_path):
    ctx = {"ti": FakeTI()}
    given = {"prompt": "waves", "sound": False, "aspect_ratio": "16:9", "duration": 5}
    uris = KieCreateTaskOperator(
        task_id="clip",
        model="kling-2.6/text-to-video",
        input=given,
        output_path=str(tmp_path),
        poll_interval=0.05,
    ).execute(ctx)
    (kie_task_id,) = kie_emulator.state.tasks
    video = tmp_path / f"{kie_task_id}-0.mp4"
    assert uris == [f"file://{video}"] and video.read_bytes()[4:8] == b"ftyp"
    manifest = json.loads((tmp_path / f"{kie_task_id}.json").read_text())
    (entry,) = manifest["files"]
    assert entry == {
        "uri": f"file://{video}",
        "kie_url": manifest["kie_urls"][0],
        "kind": "video",
        "content_type": "video/mp4",
        "bytes": video.stat().st_size,
        "sha256": hashlib.sha256(video.read_bytes()).hexdigest(),
    }
    assert ctx["ti"].xcom["kie_task"]["kind"] == "video"
    task = KieTask(kie_task_id, TaskState.SUCCESS, result_urls=tuple(manifest["kie_urls"]))
    storage.persist(task, storage.as_path(str(tmp_path)))  # a retry: the stored file is described again
    assert json.loads((tmp_path / f"{kie_task_id}.json").read_text())["files"] == [entry]


def test_frames_and_data_results_are_stored_and_listed_like_files(kie_emulator, tmp_path):
    """Seedance 2's first and last frames beside its video; a transcript (resultObject) as JSON."""
    ctx = {"ti": FakeTI()}
    frames = {"prompt": "waves at dawn", "return_last_frame": True}
    uris = KieCreateTaskOperator(
        task_id="clip",
        model="bytedance/seedance-2",
        input=frames,
        output_path=str(tmp_path),
        poll_interval=0.05,
    ).execute(ctx)
    assert [uri.rsplit(".", 1)[1] for uri in uris] == ["mp4", "png", "png"]
    (kie_task_id,) = kie_emulator.state.tasks
    manifest = json.loads((tmp_path / f"{kie_task_id}.json").read_text())
    assert [f["kind"] for f in manifest["files"]] == ["video", "image", "image"]

    speech = minimal_input(models.catalog_model("elevenlabs/speech-to-text"))
    ctx = {"ti": FakeTI()}
    (stored,) = KieCreateTaskOperator(
        task_id="transcribe", model="elevenlabs/speech-to-text", input=speech, output_path=str(tmp_path),
        poll_interval=0.05,
    ).execute(ctx)  # fmt: skip
    record = ctx["ti"].xcom["kie_task"]
    assert record["result_urls"] == [] and "transcript" in record["result_object"]["text"]
    assert json.loads(Path(stored.removeprefix("file://")).read_text()) == record["result_object"]
    manifest = json.loads((tmp_path / f"{record['kie_task_id']}.json").read_text())
    assert [(f["kind"], f["content_type"], f["kie_url"]) for f in manifest["files"]] == [
        ("data", "application/json", None)
    ]
