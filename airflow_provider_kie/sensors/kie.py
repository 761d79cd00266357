"""KieTaskSensor: wait for a Kie task created elsewhere (another task, a callback, a script)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue, conf

from airflow_provider_kie.exceptions import KieError, KieInputError, KieNotFoundError
from airflow_provider_kie.hooks.kie import KieHook
from airflow_provider_kie.links import KieResultLink
from airflow_provider_kie.operators.kie import check_wait_arguments
from airflow_provider_kie.outcome import event_result, raise_for, task_result
from airflow_provider_kie.polling import PollPolicy
from airflow_provider_kie.triggers.kie import KieTaskTrigger


class KieTaskSensor(BaseSensorOperator):
    """Wait until a Kie task is terminal; return (XCom) its result URLs, or fail with its failCode.

    :param kie_task_id: the Kie task id (templated), e.g. ``create.output`` of a
        ``KieCreateTaskOperator(wait_for_completion=False)``.
    :param kie_conn_id: connection of type ``kie``.
    :param deferrable: wait in the triggerer (``poke_interval`` is then the first poll interval).
    :param end_from_trigger: when deferred, a success ends the task in the triggerer (no worker resume).

    Modes ``poke`` and ``reschedule`` work as for any sensor; ``timeout`` is the sensor's own.
    """

    template_fields: Sequence[str] = ("kie_task_id",)
    operator_extra_links = (KieResultLink(),)

    def __init__(
        self,
        *,
        kie_task_id: str,
        kie_conn_id: str = KieHook.default_conn_name,
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
        check_wait_arguments(self.poke_interval, timedelta(seconds=self.timeout), "poke_interval")

    @cached_property
    def hook(self) -> KieHook:
        return KieHook(self.kie_conn_id)

    def _checked_task_id(self) -> str:
        if not isinstance(self.kie_task_id, str) or not self.kie_task_id.strip():
            raise KieInputError(
                "kie_task_id", f"must render to a non-empty Kie task id, got {self.kie_task_id!r}"
            )
        return self.kie_task_id.strip()

    def execute(self, context: Any) -> Any:
        task_id = self._checked_task_id()
        if not self.deferrable:
            return super().execute(context)
        policy = PollPolicy(initial_interval=float(self.poke_interval))
        self.defer(
            trigger=KieTaskTrigger(
                task_id,
                time.time() + float(self.timeout),
                self.kie_conn_id,
                policy.to_dict(),
                self.end_from_trigger,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Any) -> bool | PokeReturnValue:
        task_id = self._checked_task_id()
        try:
            task = self.hook.get_task(task_id)
        except KieNotFoundError:
            self.log.info("Kie does not show task %s yet", task_id)
            return False
        except KieError as error:
            if error.retryable:
                self.log.warning("Kie task %s: %s", task_id, error)
                return False
            error.task_id = task_id
            raise_for(error)
        self.log.info("Kie task %s is %s", task_id, task.state.value)
        if not task.is_terminal:
            return False
        return PokeReturnValue(is_done=True, xcom_value=task_result(context, task))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> list[str]:
        return event_result(context, event, self.kie_conn_id)
