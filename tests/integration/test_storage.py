"""output_path: results streamed from Kie into object storage, atomically, with a manifest, once."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_kie import storage
from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.exceptions import KieStorageError
from airflow_provider_kie.operators.seedream import SeedreamEditOperator
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


def test_deferred_task_copies_on_the_worker_that_resumes(kie_emulator, tmp_path, triggerer_xcom):
    operator = edit(output_path=str(tmp_path), deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": FakeTI()})
    trigger = deferred.value.trigger
    assert trigger.serialize()[1]["end_from_trigger"] is False  # a worker does the copy
    event = triggerer_xcom.run_in_triggerer(trigger)
    uris = edit(output_path=str(tmp_path), deferrable=True).execute_complete({"ti": FakeTI()}, event.payload)
    (kie_task_id,) = kie_emulator.state.tasks
    assert uris == [f"file://{tmp_path}/{kie_task_id}-0.png"]
    assert json.loads((tmp_path / f"{kie_task_id}.json").read_text())["input"]["prompt"] == "Make it water"


@pytest.mark.skipif(not AIRFLOW_33, reason="task_state_store arrived in Airflow 3.3")
@pytest.mark.fault(
    fault="copy to output_path fails mid-file",
    where="worker (non-deferrable)",
    expected="the retry finishes the copy from the same Kie task, no new createTask",
)
def test_a_failed_copy_is_finished_by_the_retry_without_paying_again(kie_emulator, tmp_path, monkeypatch):
    store = DictStateStore()
    real_write = storage._write_atomically

    def write_half_then_fail(target, chunks):
        def broken():
            yield next(iter(chunks))
            raise OSError("disk unplugged")

        real_write(target, broken())

    with monkeypatch.context() as patch:
        patch.setattr(storage, "_write_atomically", write_half_then_fail)
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
        extra["kie_task_id"] == kie_task_id and extra["stored"] == uris and extra["credits_consumed"] == 6.0
    )
