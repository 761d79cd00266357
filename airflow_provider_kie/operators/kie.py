"""KieCreateTaskOperator: submit a task to any Kie Market model, then wait (deferred or not) for it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator, ResumableJobMixin, conf

from airflow_provider_kie import api
from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.exceptions import KieError, KieInputError, KieNotFoundError
from airflow_provider_kie.hooks.kie import KieHook
from airflow_provider_kie.links import KieResultLink
from airflow_provider_kie.outcome import XCOM_TASK_ID, event_result, raise_for, task_result
from airflow_provider_kie.polling import PollPolicy, after_poll
from airflow_provider_kie.triggers.kie import TRIGGER_WRITES_XCOM, KieTaskTrigger


class KieCreateTaskOperator(ResumableJobMixin, BaseOperator):
    """Create one Kie task and, unless told otherwise, wait for it and return its result URLs.

    :param model: Kie Market model, e.g. ``"seedream/4.5-edit"``.
    :param input: the model's ``input`` object (templated). Known models are validated before any request.
    :param callback_url: absolute http(s) URL Kie POSTs to when the task ends (templated).
    :param kie_conn_id: connection of type ``kie``.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param wait_for_completion: if False, return the Kie task id right after creation.
    :param poll_interval: first poll interval in seconds; the policy backs off with the task's age.
    :param timeout: how long to wait for the task, as an absolute deadline set when it is created; it
        holds across deferral, triggerer restarts and retries that resume the same Kie task.
    :param retry_ambiguous_create: resend a createTask whose reply was lost (may pay twice).
    :param end_from_trigger: when deferred, a success ends the task in the triggerer with its XCom,
        without resuming on a worker; set False if a subclass must run ``execute_complete`` on success.

    Deferrable on Airflow 3, the triggerer creates the Kie task: the worker only validates the input
    and defers, and the triggerer's one rate limiter paces every task to Kie's createTask limit. On
    Airflow 2 the worker creates it, then defers.

    XCom: ``return_value`` = list of result URLs; ``kie_task_id`` (pushed as soon as the task exists);
    ``kie_task`` = JSON record (state, result_urls, fail_code, fail_msg, credits_consumed, times).
    """

    template_fields: Sequence[str] = ("model", "input", "callback_url")
    template_fields_renderers = {"input": "json"}
    operator_extra_links = (KieResultLink(),)
    ui_color = "#f0e6ff"
    # Key of the Kie task (id and deadline) in the task state store; renaming it breaks in-flight retries.
    external_id_key = "kie_task"

    def __init__(
        self,
        *,
        model: str = "",
        input: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        kie_conn_id: str = KieHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        wait_for_completion: bool = True,
        poll_interval: float = 3.0,
        timeout: timedelta = timedelta(minutes=30),
        retry_ambiguous_create: bool = False,
        end_from_trigger: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.input = input
        self.callback_url = callback_url
        self.kie_conn_id = kie_conn_id
        self.deferrable = deferrable
        self.wait_for_completion = wait_for_completion
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.retry_ambiguous_create = retry_ambiguous_create
        self.end_from_trigger = end_from_trigger
        check_wait_arguments(poll_interval, timeout)
        self._finished: KieTask | None = None
        self.kie_result_urls: list[str] | None = None  # for KieResultLink, once known

    @cached_property
    def hook(self) -> KieHook:
        return KieHook(self.kie_conn_id, retry_ambiguous_create=self.retry_ambiguous_create)

    @property
    def poll_policy(self) -> PollPolicy:
        return PollPolicy(initial_interval=self.poll_interval)

    def build_input(self) -> dict[str, Any]:
        """The rendered ``input``; subclasses build it from their own typed fields."""
        if not isinstance(self.input, Mapping):
            raise KieInputError("input", f"must be a dict of the model's input fields, got {self.input!r}")
        return dict(self.input)

    def execute(self, context: Any) -> Any:
        # Everything is validated before any request: bad input never costs a call.
        self._body = api.create_task_body(self.model, self.build_input(), self.callback_url)
        try:
            return self.execute_resumable(context)
        except KieError as error:
            raise_for(error)

    # ResumableJobMixin: the external id is {"task_id", "deadline"}, stored before waiting starts.
    def submit_job(self, context: Any) -> dict[str, Any]:
        if self.deferrable and self.wait_for_completion and TRIGGER_WRITES_XCOM:
            # One process, one rate limiter: a batch's createTasks queue in the triggerer, not in worker
            # slots, and never burst past Kie's limit from many workers at once.
            self.defer(
                trigger=KieTaskTrigger(
                    kie_conn_id=self.kie_conn_id,
                    poll_policy=self.poll_policy.to_dict(),
                    end_from_trigger=self.end_from_trigger,
                    create=self._body,
                    timeout=self.timeout.total_seconds(),
                    retry_ambiguous_create=self.retry_ambiguous_create,
                ),
                method_name="execute_complete",
            )
        task_id = self.hook.create_task(
            self._body["model"], self._body["input"], self._body.get("callBackUrl")
        )
        context["ti"].xcom_push(key=XCOM_TASK_ID, value=task_id)
        return {"task_id": task_id, "deadline": time.time() + self.timeout.total_seconds()}

    def get_job_status(self, external_id: Any, context: Any) -> str:
        try:
            return self.hook.get_task(external_id["task_id"]).state.value
        except KieNotFoundError:  # "recordInfo is null" right after creation
            return TaskState.WAITING.value

    def is_job_active(self, status: str) -> bool:
        return not TaskState.parse(status).is_terminal

    def is_job_succeeded(self, status: str) -> bool:
        return status == TaskState.SUCCESS.value

    def poll_until_complete(self, external_id: Any, context: Any) -> Any:
        # The mixin returns this value as is when it reconnects to a stored task, hence the result.
        task_id, deadline = external_id["task_id"], float(external_id["deadline"])
        context["ti"].xcom_push(key=XCOM_TASK_ID, value=task_id)
        if self.wait_for_completion and self.deferrable:
            self.defer(
                trigger=KieTaskTrigger(
                    task_id, deadline, self.kie_conn_id, self.poll_policy.to_dict(), self.end_from_trigger
                ),
                method_name="execute_complete",
            )
        if self.wait_for_completion:
            self._finished = wait_for_task(self.hook, task_id, self.poll_policy, deadline, self.log)
        return self.get_job_result(external_id, context)

    def get_job_result(self, external_id: Any, context: Any) -> Any:
        if not self.wait_for_completion:
            return external_id["task_id"]
        task = self._finished or self.hook.get_task(external_id["task_id"])
        return task_result(context, task)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> list[str]:
        """Resume after the trigger: return the URLs, or fail with the task's failCode and failMsg."""
        if event.get("task_id") and event.get("deadline"):
            # If the triggerer created the task, keep it where a retry looks, so the retry resumes it.
            store = context.get("task_state_store")
            if self.durable and store is not None:
                store.set(self.external_id_key, {"task_id": event["task_id"], "deadline": event["deadline"]})
            context["ti"].xcom_push(key=XCOM_TASK_ID, value=event["task_id"])
        return event_result(context, event, self.kie_conn_id)


def check_wait_arguments(poll_interval: Any, timeout: Any, interval_name: str = "poll_interval") -> None:
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
        raise KieInputError(interval_name, f"must be a positive number of seconds, got {poll_interval!r}")
    if not isinstance(timeout, timedelta) or timeout.total_seconds() <= 0:
        raise KieInputError("timeout", f"must be a positive datetime.timedelta, got {timeout!r}")


def wait_for_task(hook: KieHook, task_id: str, policy: PollPolicy, deadline: float, log: Any) -> KieTask:
    """Poll in this process (worker) with the trigger's policy until the task is terminal."""
    waiting_since = time.time()
    while True:
        outcome: KieTask | KieError
        try:
            outcome = hook.get_task(task_id)
        except KieError as error:
            outcome = error
        delay = after_poll(
            policy, task_id=task_id, outcome=outcome, waiting_since=waiting_since, deadline=deadline, log=log
        )
        if delay is None:
            assert isinstance(outcome, KieTask)
            return outcome
        time.sleep(delay)
