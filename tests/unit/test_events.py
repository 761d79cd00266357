"""The operator <-> trigger contract: job references and events survive JSON and keep their meaning."""

from __future__ import annotations

import json

import pytest

from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.events import CreateRequest, EventStatus, KieJobRef, KieTaskEvent
from airflow_provider_kie.exceptions import KieAuthError, KieError, KieTimeoutError

JOB = KieJobRef("abc", 1234.5)


def through_json(value):
    return json.loads(json.dumps(value))


def test_job_ref_round_trip_and_the_0_1_0_shape():
    assert KieJobRef.from_dict(through_json(JOB.to_dict())) == JOB
    assert KieJobRef.from_dict({"task_id": "abc", "deadline": 1234.5}) == JOB  # stored by version 0.1.0
    with pytest.raises(ValueError, match="deadline"):
        KieJobRef.from_dict({"kie_task_id": "abc"})


def test_create_request_round_trip():
    request = CreateRequest({"model": "m", "input": {}}, 60.0, retry_ambiguous_create=True)
    assert CreateRequest.from_dict(through_json(request.to_dict())) == request


@pytest.mark.parametrize(("state", "status"), [(TaskState.SUCCESS, "success"), (TaskState.FAIL, "failed")])
def test_finished_events(state, status):
    task = KieTask(
        kie_task_id="abc", state=state, result_urls=("https://r/1.png",) if status == "success" else ()
    )
    event = KieTaskEvent.finished(JOB, task)
    payload = through_json(event.to_dict())
    assert payload["status"] == status and payload["kie_task_id"] == "abc" and payload["deadline"] == 1234.5
    assert KieTaskEvent.from_dict(payload) == event


def test_error_event_keeps_class_code_and_task():
    event = KieTaskEvent.errored(JOB, KieAuthError("bad key", code=401))
    again = KieTaskEvent.from_dict(through_json(event.to_dict()))
    error = again.as_error(conn_id="kie_default")
    assert type(error) is KieAuthError and error.code == 401 and error.kie_task_id == "abc"
    assert error.conn_id == "kie_default"


def test_an_unexpected_exception_becomes_a_kie_error_with_its_cause():
    event = KieTaskEvent.errored(None, RuntimeError("boom"))
    assert event.job is None and "RuntimeError: boom" in str(event.as_error())


def test_timeout_event_and_an_unreadable_event():
    timeout = KieTaskEvent.from_dict(
        through_json(KieTaskEvent(EventStatus.TIMEOUT, JOB, message="late").to_dict())
    )
    assert isinstance(timeout.as_error(), KieTimeoutError) and timeout.as_error().kie_task_id == "abc"
    odd = KieTaskEvent.from_dict({"status": "??"})
    assert odd.status is EventStatus.ERROR and type(odd.as_error()) is KieError
