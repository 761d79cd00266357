"""OpenLineage: what the OpenLineage provider's own extraction reads from a Kie operator that ran."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import DAG
from airflow.providers.openlineage.extractors.manager import ExtractorManager
from airflow.utils.state import TaskInstanceState
from openlineage.client.serde import Serde

from airflow_provider_kie.operators.seedream import SeedreamEditOperator
from tests.support import EXAMPLES, FakeTI

pytestmark = pytest.mark.usefixtures("fast_kie")


def edit(**kwargs):
    with DAG("kie_lineage", schedule=None, start_date=datetime(2026, 1, 1)):
        return SeedreamEditOperator(
            **{"task_id": "edit", "prompt": "Make it water", "poll_interval": 0.05, **kwargs}
        )


def extracted(operator, state=TaskInstanceState.SUCCESS):
    """Lineage as the OpenLineage listener gets it when the task ends."""
    ti = SimpleNamespace(task=operator, dag_id="kie_lineage", task_id="edit", run_id="r", map_index=-1)
    return ExtractorManager().extract_metadata(
        dagrun=SimpleNamespace(run_id="r"), task=operator, task_instance_state=state, task_instance=ti
    )


def names(datasets):
    return [(d.namespace, d.name) for d in datasets]


def test_a_local_input_and_stored_results(kie_emulator, tmp_path):
    sample = str(EXAMPLES / "sample.png")
    operator = edit(image_urls=[sample], output_path=str(tmp_path))
    uris = operator.execute({"ti": FakeTI()})
    lineage = extracted(operator)
    (kie_task_id,) = kie_emulator.state.tasks
    assert names(lineage.inputs) == [("file", sample)]  # the file as given, not its upload's URL
    assert names(lineage.outputs) == [("file", f"{tmp_path}/{kie_task_id}-0.png")] and len(uris) == 1
    facet = json.loads(Serde.to_json(lineage.run_facets["kie_jobs"]))
    assert facet["kieTaskIds"] == [kie_task_id] and facet["model"] == "seedream/4.5-edit"
    assert facet["states"] == ["success"] and facet["creditsConsumed"] == 6.0 and facet["kind"] == "image"
    assert facet["_schemaURL"] and facet["_producer"] is not None


def test_urls_in_and_out_with_an_s3_input(kie_emulator, s3_server):
    bucket = s3_server.bucket("kie-lineage")
    s3_server.client().put_object(
        Bucket="kie-lineage", Key="in/a.png", Body=(EXAMPLES / "sample.png").read_bytes()
    )
    operator = edit(image_urls=[f"{bucket}/in/a.png", "https://cdn.example.com/b.png"])
    urls = operator.execute({"ti": FakeTI()})
    lineage = extracted(operator)
    assert names(lineage.inputs) == [("s3://kie-lineage", "in/a.png"), ("https://cdn.example.com", "b.png")]
    host = kie_emulator.url.split("://")[1]
    assert names(lineage.outputs) == [(f"http://{host}", url.split(host + "/")[1]) for url in urls]


def test_a_task_resumed_after_the_triggerer(kie_emulator, tmp_path, triggerer_xcom):
    from airflow.providers.common.compat.sdk import TaskDeferred

    given = {"image_urls": ["https://a/b.png"], "output_path": str(tmp_path), "deferrable": True}
    with pytest.raises(TaskDeferred) as deferred:
        edit(end_from_trigger=False, **given).execute({"ti": FakeTI()})
    event = triggerer_xcom.run_in_triggerer(deferred.value.trigger)
    resumed = edit(end_from_trigger=False, **given)  # a worker resumes with a new operator
    resumed.execute_complete({"ti": FakeTI()}, event.payload)
    lineage = extracted(resumed)
    (kie_task_id,) = kie_emulator.state.tasks
    assert names(lineage.outputs) == [("file", f"{tmp_path}/{kie_task_id}-0.png")]
    assert lineage.run_facets["kie_jobs"].kieTaskIds == [kie_task_id]


def test_a_failed_kie_task_still_names_its_run(kie_emulator):
    operator = edit(image_urls=["https://a/b.png"], prompt="[fail] please")
    with pytest.raises(Exception, match="failCode"):
        operator.execute({"ti": FakeTI()})
    lineage = extracted(operator, TaskInstanceState.FAILED)
    assert lineage.run_facets["kie_jobs"].states == ["fail"] and lineage.outputs == []


def test_the_provider_does_not_import_openlineage():
    script = "import sys, airflow_provider_kie.operators.seedream; print('openlineage' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_a_batch_with_a_failed_item(kie_emulator, tmp_path):
    from airflow_provider_kie.operators.batch import SeedreamEditBatchOperator

    sample = str(EXAMPLES / "sample.png")
    with DAG("kie_lineage", schedule=None, start_date=datetime(2026, 1, 1)):
        operator = SeedreamEditBatchOperator(
            task_id="edits",
            edits=["one", "two [fail]", {"prompt": "three", "image_urls": ["https://cdn.example.com/b.png"]}],
            image_urls=[sample],
            output_path=str(tmp_path),
            on_item_failure="report",
            poll_interval=0.05,
        )
    results = operator.execute({"ti": FakeTI()})
    lineage = extracted(operator)
    assert names(lineage.inputs) == [("file", sample), ("https://cdn.example.com", "b.png")]
    made = [results[i]["kie_task_id"] for i in (0, 2)]
    assert names(lineage.outputs) == [("file", f"{tmp_path}/{task}-0.png") for task in made]
    facet = json.loads(Serde.to_json(lineage.run_facets["kie_jobs"]))
    assert facet["jobs"] == 3 and facet["succeeded"] == 2 and len(facet["kieTaskIds"]) == 3
    assert facet["states"] == ["success", "fail", "success"]
