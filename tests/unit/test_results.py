"""results.py: what a finished task leaves in XCom, and which errors fail a task at once."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_kie import exceptions
from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.events import EventStatus, KieJobRef, KieTaskEvent
from airflow_provider_kie.exceptions import KieError
from airflow_provider_kie.links import LINK_XCOM_KEY, link_xcoms
from airflow_provider_kie.results import event_result, raise_for, result_xcoms
from tests.support import FakeTI


@pytest.mark.parametrize(
    ("error", "fails_at_once"),
    [
        (exceptions.KieAuthError("x"), True),
        (exceptions.KieValidationError("x"), True),
        (exceptions.KieAmbiguousCreateError("x"), True),
        (exceptions.KieTimeoutError("x"), True),
        (exceptions.KieRateLimitError("x"), False),
        (exceptions.KieServerError("x"), False),
        (exceptions.KieTaskFailedError("x"), False),  # a failed generation may succeed when tried again
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, KieError) else str(value),
)
def test_raise_for_keeps_retries_only_where_a_retry_can_help(error, fails_at_once):
    with pytest.raises(AirflowFailException if fails_at_once else type(error)):
        raise_for(error)


def test_event_result_returns_urls_and_pushes_the_record():
    task = KieTask(kie_task_id="abc", state=TaskState.SUCCESS, result_urls=("https://r/1.png",))
    context = {"ti": FakeTI()}
    urls = event_result(context, KieTaskEvent.finished(KieJobRef("abc", 1.0), task), "kie_default")
    assert urls == ["https://r/1.png"] and context["ti"].xcom["kie_task"] == {**task.to_dict(), "kind": None}
    assert "return_value" not in context["ti"].xcom  # Airflow writes it from what execute returns
    assert result_xcoms(task)["return_value"] == urls


def test_event_result_raises_the_error_the_event_carries():
    event = KieTaskEvent.errored(KieJobRef("abc", 1.0), exceptions.KieRateLimitError("slow"))
    with pytest.raises(exceptions.KieRateLimitError):
        event_result({"ti": FakeTI()}, event, "kie_default")
    with pytest.raises(AirflowFailException, match="late"):
        event_result({"ti": FakeTI()}, KieTaskEvent(EventStatus.TIMEOUT, message="late"), "kie_default")


def test_a_failed_task_raises_with_its_fail_code():
    task = KieTask(kie_task_id="abc", state=TaskState.FAIL, fail_code="500", fail_msg="oops")
    with pytest.raises(exceptions.KieTaskFailedError, match="500") as info:
        event_result({"ti": FakeTI()}, KieTaskEvent.finished(KieJobRef("abc", 1.0), task), "kie_default")
    assert info.value.fail_code == "500" and info.value.kie_task_id == "abc"


def test_result_xcoms_are_what_a_worker_leaves():
    task = KieTask(
        kie_task_id="abc", state=TaskState.SUCCESS, result_urls=("https://r/1.png", "https://r/2.png")
    )
    xcoms = result_xcoms(task)
    assert xcoms["return_value"] == ["https://r/1.png", "https://r/2.png"]
    assert xcoms["kie_task"] == {**task.to_dict(), "kind": None}  # outside the catalog
    video = KieTask(kie_task_id="v", state=TaskState.SUCCESS, model="kling-2.6/text-to-video")
    assert result_xcoms(video)["kie_task"]["kind"] == "video"
    links = link_xcoms(task.result_urls)
    if LINK_XCOM_KEY:  # Airflow 3 keeps the rendered link in XCom
        assert links == {LINK_XCOM_KEY: "https://r/1.png"}
    else:
        assert links == {}
