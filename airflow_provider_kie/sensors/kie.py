"""KieTaskSensor: wait for a Kie task created elsewhere (another task, a callback, a script)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue, conf

from airflow_provider_kie.api import KieTask
from airflow_provider_kie.compat import first_reschedule_time
from airflow_provider_kie.connection import DEFAULT_CONN_ID
from airflow_provider_kie.events import JobOutcome, JobRef, JobsEvent
from airflow_provider_kie.exceptions import KieError, KieInputError
from airflow_provider_kie.links import KieResultLink
from airflow_provider_kie.operators.base import check_wait_arguments
from airflow_provider_kie.results import finish, may_end_in_triggerer, raise_for
from airflow_provider_kie.waiting import PollAgain, PollPolicy, Waiter

if TYPE_CHECKING:
    from airflow_provider_kie.hooks.kie import KieHook


class KieTaskSensor(BaseSensorOperator):
    """Wait until a Kie task is terminal; return (XCom) its result URLs, or fail with its failCode.

    :param kie_task_id: the Kie task id (templated), e.g. ``create.output`` of a
        ``KieCreateTaskOperator(wait_for_completion=False)``.
    :param kie_conn_id: connection of type ``kie``.
    :param deferrable: wait in the triggerer (``poke_interval`` is then the first poll interval); a
        task created with the connection's ``callback_base_url`` is then awaited by its callback.
    :param end_from_trigger: when deferred, a success ends the task in the triggerer (no worker resume).

    Modes ``poke`` and ``reschedule`` work as for any sensor; ``timeout`` is the sensor's own. In every
    mode a task id Kie still does not know after the poll policy's ``not_found_grace`` (60 s) fails
    the sensor, as it fails the operator.
    """

    template_fields: Sequence[str] = ("kie_task_id",)
    operator_extra_links = (KieResultLink(),)

    def __init__(
        self,
        *,
        kie_task_id: str,
        kie_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        end_from_trigger: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 3.0)
        super().__init__(**kwargs)
        self.kie_task_id = kie_task_id
        self.kie_conn_id = kie_conn_id
        self.deferrable = deferrable
        self.end_from_trigger = end_from_trigger
        self.kie_result_urls: list[str] | None = None  # for KieResultLink, once known
        self._waiter: Waiter | None = None  # the wait of this run, across pokes
        check_wait_arguments(self.poke_interval, timedelta(seconds=self.timeout), "poke_interval")

    @cached_property
    def hook(self) -> KieHook:
        from airflow_provider_kie.hooks.kie import KieHook  # when a task runs, not when a DAG is parsed

        return KieHook(self.kie_conn_id)

    def _checked_task_id(self) -> str:
        if not isinstance(self.kie_task_id, str) or not self.kie_task_id.strip():
            raise KieInputError(
                "kie_task_id", f"must render to a non-empty Kie task id, got {self.kie_task_id!r}"
            )
        return self.kie_task_id.strip()

    def execute(self, context: Any) -> Any:
        kie_task_id = self._checked_task_id()
        policy = PollPolicy(initial_interval=float(self.poke_interval))
        if not self.deferrable:
            # Poke and reschedule modes decide on each answer as the trigger would; Airflow's own
            # sensor timeout is the deadline. In reschedule mode the wait started at the first poke.
            started = _first_poke_time(context) if self.reschedule else time.time()
            self._waiter = Waiter(JobRef(kie_task_id, math.inf), policy, self.log, waiting_since=started)
            return super().execute(context)
        # Imported when a task defers: a DAG file's parse needs no trigger (nor the engine behind it).
        from airflow_provider_kie.triggers.jobs import KieJobsTrigger

        self.defer(
            trigger=KieJobsTrigger.waiting_for(
                kie_task_id,
                time.time() + float(self.timeout),
                kie_conn_id=self.kie_conn_id,
                poll_policy=policy.to_dict(),
                end_from_trigger=may_end_in_triggerer(self),
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Any) -> bool | PokeReturnValue:
        kie_task_id = self._checked_task_id()
        if self._waiter is None or self._waiter.job.kie_task_id != kie_task_id:  # poke() called directly
            self._waiter = Waiter(JobRef(kie_task_id, math.inf), PollPolicy(), self.log)
        try:
            outcome: KieTask | KieError = self.hook.get_task(kie_task_id)
        except KieError as error:
            outcome = error
        try:
            step = self._waiter.step(outcome)
        except KieError as error:
            raise_for(error)
        if isinstance(step, PollAgain):
            return False
        event = JobsEvent([JobOutcome.finished(0, JobRef(kie_task_id, 0.0), step.task)])
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, event))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> list[str]:
        return self._finish(context, JobsEvent.from_dict(event))

    def _finish(self, context: Any, event: JobsEvent) -> list[str]:
        return finish(context, event, single=True, policy="fail", model=None, keep=False)


def _first_poke_time(context: Any) -> float:
    """When a rescheduled sensor first poked (Airflow 3 knows it); now on Airflow 2, where a task
    cannot ask, so there "not found" is tolerated until the sensor's own timeout."""
    first = first_reschedule_time(context)
    return time.time() if first is None else first
