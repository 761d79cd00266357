"""The typed seams: job references, jobs, outcomes and events survive JSON and keep their meaning."""

from __future__ import annotations

import json

import pytest

from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.events import Job, JobOutcome, JobRef, Status
from airflow_provider_kie.exceptions import KieAuthError, KieError, KieTaskFailedError, KieTimeoutError

JOB = JobRef("abc", 1234.5)


def through_json(value):
    return json.loads(json.dumps(value))


def test_job_ref_round_trip_and_the_0_1_0_shape():
    assert JobRef.from_dict(through_json(JOB.to_dict())) == JOB
    assert JobRef.from_dict({"task_id": "abc", "deadline": 1234.5}) == JOB  # stored by version 0.1.0
    with pytest.raises(ValueError, match="deadline"):
        JobRef.from_dict({"kie_task_id": "abc"})


def test_a_job_round_trip_and_its_provenance():
    job = Job({"model": "m", "input": {"prompt": "p"}}, ("/data/in.png",), ('aspect_ratio="5:4"',))
    assert Job.from_dict(through_json(job.to_dict())) == job
    assert job.provenance.to_dict() == {"input": {"prompt": "p"}, "sources": ["/data/in.png"]}
    assert Job.from_dict({"body": {}}) == Job()


@pytest.mark.parametrize(("state", "status"), [(TaskState.SUCCESS, "success"), (TaskState.FAIL, "failed")])
def test_finished_outcomes_keep_the_records_0_1_0_keys(state, status):
    task = KieTask(
        kie_task_id="abc",
        state=state,
        model="m",
        result_urls=("https://r/1.png",) if status == "success" else (),
    )
    outcome = JobOutcome.finished(0, JOB, task)
    payload = through_json(outcome.to_dict())
    assert payload["status"] == status and payload["kie_task_id"] == "abc" and payload["deadline"] == 1234.5
    assert {k: payload[k] for k in task.to_dict()} == task.to_dict()  # the keys kie_task had in 0.1.0
    assert JobOutcome.from_dict(payload) == outcome


def test_an_error_outcome_keeps_class_code_and_task():
    outcome = JobOutcome.errored(0, JOB, KieAuthError("bad key", code=401))
    again = JobOutcome.from_dict(through_json(outcome.to_dict()))
    error = again.as_error(conn_id="kie_default")
    assert type(error) is KieAuthError and error.code == 401 and error.kie_task_id == "abc"
    assert error.conn_id == "kie_default"


def test_an_unexpected_exception_becomes_a_kie_error_with_its_cause():
    outcome = JobOutcome.errored(0, None, RuntimeError("boom"))
    assert outcome.job is None and "RuntimeError: boom" in str(outcome.as_error())


def test_timeouts_failures_and_an_unreadable_outcome():
    timeout = JobOutcome.from_dict(
        through_json(JobOutcome.errored(0, JOB, KieTimeoutError("late")).to_dict())
    )
    assert timeout.status is Status.TIMEOUT and isinstance(timeout.as_error(), KieTimeoutError)
    assert timeout.as_error().kie_task_id == "abc"
    failed = JobOutcome(0, Status.FAILED, "abc", fail_code="500", fail_msg="oops").as_error()
    assert isinstance(failed, KieTaskFailedError) and failed.fail_code == "500"
    odd = JobOutcome.from_dict({"status": "error"})
    assert odd.status is Status.ERROR and type(odd.as_error()) is KieError
