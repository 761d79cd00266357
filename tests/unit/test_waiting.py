"""The one wait decision, stepped by the operator, the trigger and the sensor."""

from __future__ import annotations

import math

import pendulum
import pytest

from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.exceptions import (
    KieAuthError,
    KieNotFoundError,
    KieRateLimitError,
    KieTimeoutError,
)
from airflow_provider_kie.waiting import Finished, PollAgain, PollPolicy, decide

POLICY = PollPolicy(initial_interval=3, backoff=1 / 3, max_interval=30, not_found_grace=60)
NOW = 10_000.0


def step(outcome, *, waited=0.0, deadline=math.inf):
    return decide(
        POLICY, kie_task_id="abc", outcome=outcome, waiting_since=NOW - waited, deadline=deadline, now=NOW
    )


def task(state, created_ago=None):
    created = None if created_ago is None else pendulum.from_timestamp(NOW - created_ago)
    return KieTask(kie_task_id="abc", state=state, created_at=created)


@pytest.mark.parametrize("state", [TaskState.SUCCESS, TaskState.FAIL])
def test_a_terminal_task_is_finished(state):
    assert step(task(state)) == Finished(task(state))


def test_a_terminal_task_is_finished_even_past_the_deadline():
    assert isinstance(step(task(TaskState.SUCCESS), deadline=NOW - 1), Finished)


@pytest.mark.parametrize("state", [TaskState.WAITING, TaskState.GENERATING, TaskState.UNKNOWN])
def test_a_pending_task_polls_again_after_the_policy_interval(state):
    assert step(task(state, created_ago=0)) == PollAgain(3.0)
    assert step(task(state, created_ago=30)) == PollAgain(10.0)  # backs off with the task's age
    assert step(task(state, created_ago=600)) == PollAgain(30.0)  # capped


def test_age_counts_from_waiting_start_when_kie_gives_no_creation_time():
    assert step(task(TaskState.WAITING), waited=60) == PollAgain(20.0)


def test_the_next_poll_never_sleeps_past_the_deadline():
    assert step(task(TaskState.GENERATING, created_ago=600), deadline=NOW + 2) == PollAgain(2.0)


def test_the_deadline_raises_a_timeout_naming_the_last_state():
    with pytest.raises(KieTimeoutError, match="last seen: generating") as info:
        step(task(TaskState.GENERATING), deadline=NOW)
    assert info.value.kie_task_id == "abc"


def test_not_found_is_tolerated_during_the_grace_then_raised():
    assert isinstance(step(KieNotFoundError("recordInfo is null", code=422), waited=59), PollAgain)
    with pytest.raises(KieNotFoundError, match="unknown to this API key") as info:
        step(KieNotFoundError("recordInfo is null", code=422), waited=61)
    assert info.value.kie_task_id == "abc" and info.value.code == 422


def test_a_retryable_error_polls_again_and_a_final_one_raises():
    assert isinstance(step(KieRateLimitError("slow down")), PollAgain)
    with pytest.raises(KieAuthError) as info:
        step(KieAuthError("bad key"))
    assert info.value.kie_task_id == "abc"


def test_policy_round_trips_and_rejects_bad_values():
    assert PollPolicy.from_dict(POLICY.to_dict()) == POLICY
    with pytest.raises(ValueError, match="initial_interval"):
        PollPolicy(initial_interval=0)


def test_a_wait_logs_each_change_of_state_and_each_error_not_each_poll():
    from airflow_provider_kie.events import JobRef
    from airflow_provider_kie.waiting import Waiter

    lines: list[str] = []
    log = type("Log", (), {"info": lambda self, m, *a: lines.append(m % a), "warning": None})()
    log.warning = log.info
    waiter = Waiter(JobRef("abc", math.inf), POLICY, log)
    for outcome in [
        task(TaskState.WAITING),
        task(TaskState.WAITING),
        task(TaskState.GENERATING),
        KieRateLimitError("slow down"),
        task(TaskState.GENERATING),
        task(TaskState.GENERATING),
        task(TaskState.SUCCESS),
    ]:
        waiter.step(outcome)
    assert lines == [
        "Kie task abc is waiting",
        "Kie task abc is generating",
        "Kie task abc: slow down",
        "Kie task abc is generating",
        "Kie task abc is success",
    ]
