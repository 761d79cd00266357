"""Files in and out of S3 through Airflow's object storage, on a real S3-protocol server (moto's)."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_kie.operators.seedream import SeedreamEditOperator
from tests.support import EXAMPLES, FakeTI

pytestmark = pytest.mark.usefixtures("fast_kie")
SAMPLE = (EXAMPLES / "sample.png").read_bytes()


def edit(**kwargs):
    return SeedreamEditOperator(
        **{"task_id": "edit", "prompt": "Make it water", "poll_interval": 0.05, **kwargs}
    )


def test_an_s3_input_is_uploaded_and_results_stored_in_s3(kie_emulator, s3_server):
    bucket = s3_server.bucket("kie-content")
    s3_server.client().put_object(Bucket="kie-content", Key="in/sample.png", Body=SAMPLE)
    ctx = {"ti": FakeTI()}
    uris = edit(image_urls=[f"{bucket}/in/sample.png"], output_path=f"{bucket}/out").execute(ctx)
    (kie_task_id,) = kie_emulator.state.tasks
    assert uris == [f"{bucket}/out/{kie_task_id}-0.png"]
    assert s3_server.keys("kie-content", "out/") == [f"out/{kie_task_id}-0.png", f"out/{kie_task_id}.json"]
    stored = (
        s3_server.client().get_object(Bucket="kie-content", Key=f"out/{kie_task_id}-0.png")["Body"].read()
    )
    assert stored.startswith(b"\x89PNG")
    manifest = json.loads(
        s3_server.client().get_object(Bucket="kie-content", Key=f"out/{kie_task_id}.json")["Body"].read()
    )
    (sent,) = manifest["input"]["image_urls"]
    assert sent.startswith(f"{kie_emulator.url}/files/") and manifest["stored"] == uris  # the upload's URL
    assert manifest["sources"] == [f"{bucket}/in/sample.png"]  # the file as given
    assert kie_emulator.count("upload") == 1 and kie_emulator.count("createTask") == 1


def test_a_deferred_task_stores_its_results_in_s3_from_the_triggerer(kie_emulator, s3_server, triggerer_xcom):
    bucket = s3_server.bucket("kie-deferred")
    with pytest.raises(TaskDeferred) as deferred:
        edit(image_urls=["https://a/b.png"], output_path=f"{bucket}/out", deferrable=True).execute(
            {"ti": FakeTI()}
        )
    trigger = deferred.value.trigger
    assert trigger.serialize()[1]["output_path"] == f"{bucket}/out"  # the conn id, never a secret
    assert "kie-test-secret" not in json.dumps(trigger.serialize())
    triggerer_xcom.run_in_triggerer(trigger)
    (kie_task_id,) = kie_emulator.state.tasks
    assert s3_server.keys("kie-deferred") == [f"out/{kie_task_id}-0.png", f"out/{kie_task_id}.json"]
