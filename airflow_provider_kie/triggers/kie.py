"""KieTaskTrigger: creates and/or waits for one Kie task in the triggerer, without a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_provider_kie.api import KieTask
from airflow_provider_kie.exceptions import KieError, KieTimeoutError
from airflow_provider_kie.hooks.kie import KieAsyncHook
from airflow_provider_kie.outcome import XCOM_TASK_DEADLINE, XCOM_TASK_ID, success_xcoms
from airflow_provider_kie.polling import PollPolicy, after_poll

try:  # Airflow 3: a trigger writes XCom through the Task SDK, like a worker.
    from airflow.sdk.execution_time.xcom import XCom as _SdkXCom
except ImportError:  # Airflow 2
    _SdkXCom = None

#: Whether a trigger can keep what it did in XCom itself (Airflow 3). Creating the Kie task in the
#: triggerer needs it: the task id must survive a triggerer restart, or the new trigger would create again.
TRIGGER_WRITES_XCOM = _SdkXCom is not None and hasattr(_SdkXCom, "aset")


class KieTaskTrigger(BaseTrigger):
    """Wait for one Kie task until it is terminal or its deadline passes; yield exactly one event.

    Either ``kie_task_id`` and ``deadline`` (epoch seconds) name a task that exists, or ``create`` (a
    createTask body) and ``timeout`` (seconds) ask the trigger to submit it first (Airflow 3). Then every
    task of the triggerer shares one rate limiter, so a batch is paced to Kie's createTask limit with no
    worker waiting, and the new task id is written to XCom ``kie_task_id`` at once: after a triggerer
    restart the trigger finds it there and waits for that task instead of creating another.

    Only JSON-safe values are serialized (ids, the createTask body, the poll policy, times), never the key.

    With ``end_from_trigger`` a success ends the Airflow task right here, with XCom ``return_value`` and
    ``kie_task``, so no worker resumes it; other outcomes resume the task.

    Events: ``{"status": "success", "task": {...}}``, ``{"status": "failed", "task": {...}, "fail_code",
    "fail_msg"}``, ``{"status": "timeout", "elapsed": s, "message"}``, ``{"status": "error", "error": {...}}``
    (the error keeps its class and code, so the operator can tell a retry from a failure); each also
    carries ``task_id`` and ``deadline`` once the Kie task exists.
    """

    def __init__(
        self,
        kie_task_id: str | None = None,
        deadline: float | None = None,
        kie_conn_id: str = "kie_default",
        poll_policy: dict[str, Any] | None = None,
        end_from_trigger: bool = False,
        *,
        create: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        retry_ambiguous_create: bool = False,
    ) -> None:
        super().__init__()
        if (kie_task_id is None) == (create is None):
            raise ValueError("KieTaskTrigger needs either kie_task_id (and deadline) or create (and timeout)")
        if kie_task_id is not None and deadline is None:
            raise ValueError("KieTaskTrigger(kie_task_id=...) needs the deadline")
        if create is not None and not (timeout and timeout > 0):
            raise ValueError("KieTaskTrigger(create=...) needs a positive timeout in seconds")
        if create is not None and not TRIGGER_WRITES_XCOM:
            raise ValueError("KieTaskTrigger(create=...) needs Airflow 3, where a trigger can write XCom")
        # Not "task_id": BaseTrigger sets that to the Airflow task's id when the triggerer runs it.
        self.kie_task_id = kie_task_id
        self.deadline = None if deadline is None else float(deadline)
        self.kie_conn_id = kie_conn_id
        self.poll_policy = PollPolicy.from_dict(poll_policy) if poll_policy else PollPolicy()
        self.end_from_trigger = end_from_trigger
        self.create = None if create is None else dict(create)
        self.timeout = timeout
        self.retry_ambiguous_create = retry_ambiguous_create

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "kie_task_id": self.kie_task_id,
            "deadline": self.deadline,
            "kie_conn_id": self.kie_conn_id,
            "poll_policy": self.poll_policy.to_dict(),
            "end_from_trigger": self.end_from_trigger,
        }
        if self.create is not None:
            # Serialized as given: after a restart the trigger must look for the task it created, which
            # it does with the create kwargs, not with a task id learnt later.
            kwargs.update(
                kie_task_id=None,
                deadline=None,
                create=self.create,
                timeout=self.timeout,
                retry_ambiguous_create=self.retry_ambiguous_create,
            )
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def __repr__(self) -> str:
        what = f"kie_task_id={self.kie_task_id!r}" if self.create is None else "create=..."
        return f"<KieTaskTrigger {what} kie_conn_id={self.kie_conn_id!r} deadline={self.deadline}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await self._run()
        # Only a triggerer that owns the task instance can end it; `airflow dags test` runs triggers
        # without one and resumes the task with whatever event it gets.
        if self.end_from_trigger and event["status"] == "success" and self.task_instance is not None:
            # Nothing is left to do on a worker: end the task here, with its XCom, and spare a worker slot.
            self.log.info(
                "Kie task %s succeeded; ending the Airflow task from the triggerer", self.kie_task_id
            )
            xcoms = success_xcoms(event["task"])
            if await self._push_xcoms(xcoms):
                # Pushed like a worker would. Airflow 3.3's TaskSuccessEvent(xcoms=...) would store each
                # value JSON-encoded twice, and a downstream task would read a string.
                yield TaskSuccessEvent()
            else:
                yield TaskSuccessEvent(xcoms=xcoms)
            return
        yield TriggerEvent(event)

    async def _run(self) -> dict[str, Any]:
        started = time.time()
        try:
            async with KieAsyncHook(
                self.kie_conn_id, retry_ambiguous_create=self.retry_ambiguous_create
            ) as hook:
                if self.kie_task_id is None:
                    await self._find_or_create(hook)
                return await self._wait(hook)
        except KieTimeoutError as error:
            return {
                **self._ids(),
                "status": "timeout",
                "elapsed": time.time() - started,
                "message": str(error),
            }
        except KieError as error:
            if error.task_id is None:
                error.task_id = self.kie_task_id
            return {**self._ids(), "status": "error", "error": error.to_event()}
        except Exception as error:  # keep the cause in the event rather than a bare triggerer traceback
            self.log.exception("Kie task %s: unexpected error", self.kie_task_id)
            return {
                **self._ids(),
                "status": "error",
                "error": {
                    "error_class": type(error).__name__,
                    "message": str(error),
                    "task_id": self.kie_task_id,
                },
            }

    def _ids(self) -> dict[str, Any]:
        return {"task_id": self.kie_task_id, "deadline": self.deadline}

    async def _find_or_create(self, hook: KieAsyncHook) -> None:
        assert self.create is not None and self.timeout is not None
        created = await self._pull_xcoms()
        if created.get(XCOM_TASK_ID):
            self.kie_task_id = created[XCOM_TASK_ID]
            self.deadline = float(created.get(XCOM_TASK_DEADLINE) or time.time() + self.timeout)
            self.log.info(
                "Kie task %s was created before a triggerer restart; waiting for it", self.kie_task_id
            )
            return
        self.kie_task_id = await hook.create_task(
            self.create["model"], self.create["input"], self.create.get("callBackUrl")
        )
        self.deadline = time.time() + self.timeout
        self.log.info("Created Kie task %s (model %s)", self.kie_task_id, self.create["model"])
        await self._push_xcoms({XCOM_TASK_ID: self.kie_task_id, XCOM_TASK_DEADLINE: self.deadline})

    async def _wait(self, hook: KieAsyncHook) -> dict[str, Any]:
        assert self.kie_task_id is not None and self.deadline is not None
        waiting_since = time.time()
        while True:
            outcome: KieTask | KieError
            try:
                outcome = await hook.get_task(self.kie_task_id)
            except KieError as error:
                outcome = error
            delay = after_poll(
                self.poll_policy,
                task_id=self.kie_task_id,
                outcome=outcome,
                waiting_since=waiting_since,
                deadline=self.deadline,
                log=self.log,
            )
            if delay is None:
                assert isinstance(outcome, KieTask)
                return {**self._ids(), **terminal_event(outcome)}
            await asyncio.sleep(delay)

    # XCom of the Airflow task this trigger runs for. Without one (a trigger run by hand, or Airflow 2)
    # nothing is kept: _push_xcoms says so, and _pull_xcoms finds nothing.
    def _xcom_target(self) -> dict[str, Any] | None:
        ti = self.task_instance
        if not TRIGGER_WRITES_XCOM or ti is None:
            return None
        return {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id, "map_index": ti.map_index}

    async def _push_xcoms(self, values: Mapping[str, Any]) -> bool:
        target = self._xcom_target()
        if target is None:
            return False
        for key, value in values.items():
            await _SdkXCom.aset(key, value, **target)
        return True

    async def _pull_xcoms(self) -> dict[str, Any]:
        target = self._xcom_target()
        if target is None:
            return {}
        return {key: await _SdkXCom.aget_one(key=key, **target) for key in (XCOM_TASK_ID, XCOM_TASK_DEADLINE)}


def terminal_event(task: KieTask) -> dict[str, Any]:
    if task.state.value == "success":
        return {"status": "success", "task": task.to_dict()}
    return {
        "status": "failed",
        "task": task.to_dict(),
        "fail_code": task.fail_code,
        "fail_msg": task.fail_msg,
    }
