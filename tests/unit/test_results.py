"""results.py: what the end of a task leaves in XCom, and which errors fail a task at once."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_kie import exceptions
from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.events import JobOutcome, JobRecord, JobRef, JobsEvent, Status
from airflow_provider_kie.exceptions import KieError, KieJobsFailedError
from airflow_provider_kie.links import LINK_XCOM_KEY
from airflow_provider_kie.results import finish, raise_for, result_xcoms
from tests.support import DictStateStore, FakeTI

REF = JobRef("abc", 1.0)


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


def single(task: KieTask) -> JobsEvent:
    return JobsEvent([JobOutcome.finished(0, REF, task)], JobRecord({0: REF}))


def test_a_single_jobs_end_returns_its_urls_pushes_its_record_and_keeps_what_a_retry_needs():
    task = KieTask(kie_task_id="abc", state=TaskState.SUCCESS, result_urls=("https://r/1.png",))
    context = {"ti": FakeTI(), "task_state_store": DictStateStore()}
    urls = finish(context, single(task), single=True, policy="fail", model=None)
    assert urls == ["https://r/1.png"]
    record = context["ti"].xcom["kie_task"]
    assert {k: record[k] for k in task.to_dict()} == task.to_dict() and record["kind"] is None
    assert "return_value" not in context["ti"].xcom  # Airflow writes it from what execute returns
    assert context["task_state_store"]["kie_jobs"] == JobRecord({0: REF}).to_dict()


def test_a_single_jobs_end_raises_the_error_it_carries():
    errored = JobsEvent([JobOutcome.errored(0, REF, exceptions.KieRateLimitError("slow"))])
    with pytest.raises(exceptions.KieRateLimitError):
        finish({"ti": FakeTI()}, errored, single=True, policy="fail", model=None)
    late = JobsEvent([JobOutcome.errored(0, REF, exceptions.KieTimeoutError("late"))])
    with pytest.raises(AirflowFailException, match="late"):
        finish({"ti": FakeTI()}, late, single=True, policy="fail", model=None)
    failed = KieTask(kie_task_id="abc", state=TaskState.FAIL, fail_code="500", fail_msg="oops")
    with pytest.raises(exceptions.KieTaskFailedError, match="500") as info:
        finish({"ti": FakeTI()}, single(failed), single=True, policy="fail", model=None)
    assert info.value.fail_code == "500" and info.value.kie_task_id == "abc"


def test_many_jobs_report_or_fail_by_policy_and_a_retry_pays_only_for_what_kie_failed():
    done = JobOutcome(0, Status.SUCCESS, "a", 1.0, result=("u",))
    failed = JobOutcome.finished(1, JobRef("b", 1.0), KieTask(kie_task_id="b", state=TaskState.FAIL))
    event = JobsEvent([done, failed], JobRecord({0: JobRef("a", 1.0), 1: JobRef("b", 1.0)}))
    reported = finish({"ti": FakeTI()}, event, single=False, policy="report", model="m")
    assert [r["status"] for r in reported] == ["success", "failed"]
    context = {"ti": FakeTI(), "task_state_store": DictStateStore()}
    with pytest.raises(KieJobsFailedError, match="1 of 2 jobs"):
        finish(context, event, single=False, policy="fail", model="m")
    assert len(context["ti"].xcom["return_value"]) == 2  # readable downstream though the task failed
    assert set(context["task_state_store"]["kie_jobs"]["jobs"]) == {"0"}  # b is paid for anew


def test_result_xcoms_are_what_a_worker_or_the_triggerer_leaves():
    task = KieTask(
        kie_task_id="abc", state=TaskState.SUCCESS, result_urls=("https://r/1.png", "https://r/2.png")
    )
    xcoms = result_xcoms(single(task), single=True)
    assert xcoms["return_value"] == ["https://r/1.png", "https://r/2.png"]
    video = KieTask(
        kie_task_id="v", state=TaskState.SUCCESS, model="kling-2.6/text-to-video", result_urls=("u",)
    )
    assert result_xcoms(single(video), single=True)["kie_task"]["kind"] == "video"
    assert LINK_XCOM_KEY not in xcoms  # Airflow renders it on a worker; the triggerer adds it
    many = result_xcoms(single(task), single=False)
    assert set(many) == {"return_value"} and many["return_value"][0]["kie_task_id"] == "abc"
