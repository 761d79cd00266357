"""KieTaskTrigger: waits for one Kie task in the triggerer, without a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_provider_kie.api import KieTask
from airflow_provider_kie.exceptions import KieError, KieTimeoutError
from airflow_provider_kie.hooks.kie import KieAsyncHook
from airflow_provider_kie.polling import PollPolicy, next_delay


class KieTaskTrigger(BaseTrigger):
    """Poll one Kie task until it is terminal or ``deadline`` passes; yield exactly one event.

    Only JSON-safe values are serialized (Kie task id, connection id, poll policy, absolute deadline as
    epoch seconds), never the key: after a triggerer restart the trigger resumes from them alone.

    With ``end_from_trigger`` a success ends the Airflow task right here (``TaskSuccessEvent`` with XCom
    ``return_value`` and ``kie_task``), so no worker resumes it; other outcomes resume the task.

    Events: ``{"status": "success", "task": {...}}``, ``{"status": "failed", "task": {...}, "fail_code",
    "fail_msg"}``, ``{"status": "timeout", "elapsed": s, "message"}``, ``{"status": "error", "error": {...}}``
    (the error keeps its class and code, so the operator can tell a retry from a failure).
    """

    def __init__(
        self,
        kie_task_id: str,
        deadline: float,
        kie_conn_id: str = "kie_default",
        poll_policy: dict[str, Any] | None = None,
        end_from_trigger: bool = False,
    ) -> None:
        super().__init__()
        # Not "task_id": BaseTrigger sets that to the Airflow task's id when the triggerer runs it.
        self.kie_task_id = kie_task_id
        self.deadline = float(deadline)
        self.kie_conn_id = kie_conn_id
        self.poll_policy = PollPolicy.from_dict(poll_policy) if poll_policy else PollPolicy()
        self.end_from_trigger = end_from_trigger

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kie_task_id": self.kie_task_id,
                "deadline": self.deadline,
                "kie_conn_id": self.kie_conn_id,
                "poll_policy": self.poll_policy.to_dict(),
                "end_from_trigger": self.end_from_trigger,
            },
        )

    def __repr__(self) -> str:
        return f"<KieTaskTrigger kie_task_id={self.kie_task_id!r} kie_conn_id={self.kie_conn_id!r} deadline={self.deadline}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await self._wait()
        if self.end_from_trigger and event["status"] == "success":
            # Nothing is left to do on a worker: end the task here, with its XCom, and spare a worker slot.
            self.log.info(
                "Kie task %s succeeded; ending the Airflow task from the triggerer", self.kie_task_id
            )
            record = event["task"]
            yield TaskSuccessEvent(xcoms={"return_value": record["result_urls"], "kie_task": record})
            return
        yield TriggerEvent(event)

    async def _wait(self) -> dict[str, Any]:
        waiting_since = time.time()
        base = {"task_id": self.kie_task_id}
        try:
            async with KieAsyncHook(self.kie_conn_id) as hook:
                while True:
                    outcome: KieTask | KieError
                    try:
                        outcome = await hook.get_task(self.kie_task_id)
                    except KieError as error:
                        outcome = error
                    if isinstance(outcome, KieTask) and outcome.is_terminal:
                        return {**base, **terminal_event(outcome)}
                    if isinstance(outcome, KieError):
                        self.log.warning("Kie task %s: %s", self.kie_task_id, outcome)
                    else:
                        self.log.info("Kie task %s is %s", self.kie_task_id, outcome.state.value)
                    delay = next_delay(
                        self.poll_policy,
                        task_id=self.kie_task_id,
                        outcome=outcome,
                        waiting_since=waiting_since,
                        deadline=self.deadline,
                    )
                    await asyncio.sleep(delay)
        except KieTimeoutError as error:
            return {
                **base,
                "status": "timeout",
                "elapsed": time.time() - waiting_since,
                "message": str(error),
            }
        except KieError as error:
            return {**base, "status": "error", "error": error.to_event()}
        except Exception as error:  # keep the cause in the event rather than a bare triggerer traceback
            self.log.exception("Kie task %s: unexpected error while waiting", self.kie_task_id)
            return {
                **base,
                "status": "error",
                "error": {
                    "error_class": type(error).__name__,
                    "message": str(error),
                    "task_id": self.kie_task_id,
                },
            }


def terminal_event(task: KieTask) -> dict[str, Any]:
    if task.state.value == "success":
        return {"status": "success", "task": task.to_dict()}
    return {
        "status": "failed",
        "task": task.to_dict(),
        "fail_code": task.fail_code,
        "fail_msg": task.fail_msg,
    }
