"""KieTaskTrigger: creates and/or waits for one Kie task in the triggerer, without a worker slot."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_kie.batch import BatchItem, BatchRun
from airflow_provider_kie.callbacks import CallbackTarget
from airflow_provider_kie.compat import (
    TRIGGER_STARTS_TASKS as TRIGGER_STARTS_TASKS,  # importable here, as before
)
from airflow_provider_kie.compat import (
    TRIGGER_WRITES_XCOM,
    end_task_in_triggerer,
    pull_xcom,
    push_xcoms,
    settle_before_resume,
    xcom_store,
)
from airflow_provider_kie.compat import resume_not_before as resume_not_before
from airflow_provider_kie.events import (
    BatchRecord,
    CreateRequest,
    EventStatus,
    KieJobRef,
    KieTaskEvent,
    StoreRequest,
)
from airflow_provider_kie.hints import callbacks_for
from airflow_provider_kie.hooks.kie import KieAsyncHook
from airflow_provider_kie.ledger import BatchLedger
from airflow_provider_kie.links import link_xcoms
from airflow_provider_kie.results import (
    XCOM_KIE_CREATE_SENT,
    XCOM_KIE_TASK_DEADLINE,
    XCOM_KIE_TASK_ID,
    result_xcoms,
)
from airflow_provider_kie.waiting import PollPolicy


class KieTaskTrigger(BaseTrigger):
    """Wait for one Kie task until it is terminal or its deadline passes; yield exactly one event.

    It starts in one of two modes, given by exactly one keyword:

    - ``job``: a :class:`~airflow_provider_kie.events.KieJobRef` dict (``kie_task_id``, ``deadline``):
      wait for a task that exists;
    - ``create``: a :class:`~airflow_provider_kie.events.CreateRequest` dict (createTask body, timeout):
      create the task first (Airflow 3). Every task of the triggerer then shares one rate limiter, so a
      batch is paced to Kie's createTask limit with no worker waiting. The time the createTask is sent,
      then the new task's id and deadline, are written to XCom; after a triggerer restart the trigger
      finds the id there and waits for that task instead of creating another, and a createTask sent
      without an id kept is an ambiguous-create error (resent only with ``retry_ambiguous_create``).

    With ``store`` (a :class:`~airflow_provider_kie.events.StoreRequest` dict) a succeeded task's results
    are copied to its ``output_path`` here, off the event loop (:func:`~airflow_provider_kie.storage.persist_async`),
    and the event carries the stored URIs. A failed copy is an error event that keeps the job, so the
    task's retry resumes the same Kie task and finishes the copy.

    Only JSON-safe values are serialized (the mode's dict, the poll policy), never the key; they are
    serialized as given, so a restarted trigger decides afresh from XCom what it already did.

    With ``end_from_trigger`` a success ends the Airflow task right here, with the XCom a worker would
    leave, so no worker resumes it; other outcomes resume the task with a
    :class:`~airflow_provider_kie.events.KieTaskEvent`, not before ``resume_not_before`` (see
    :data:`RESUME_SETTLE_SECONDS`).
    """

    def __init__(
        self,
        *,
        kie_conn_id: str = "kie_default",
        job: Mapping[str, Any] | None = None,
        create: Mapping[str, Any] | None = None,
        poll_policy: Mapping[str, Any] | None = None,
        end_from_trigger: bool = False,
        store: Mapping[str, Any] | None = None,
        resume_not_before: float | None = None,
        await_callback: bool = False,
    ) -> None:
        super().__init__()
        if (job is None) == (create is None):
            raise ValueError("KieTaskTrigger needs exactly one of job= (a task to wait for) or create=")
        # Parsed now, so a bad value fails where the trigger is built, not later in the triggerer.
        self.job = None if job is None else KieJobRef.from_dict(job)
        self.create = None if create is None else CreateRequest.from_dict(create)
        if self.create is not None and not TRIGGER_WRITES_XCOM:
            raise ValueError("KieTaskTrigger(create=...) needs Airflow 3, where a trigger can write XCom")
        if self.create is not None and not self.create.timeout > 0:
            raise ValueError("KieTaskTrigger(create=...) needs a positive timeout in seconds")
        self.kie_conn_id = kie_conn_id
        self.poll_policy = PollPolicy.from_dict(dict(poll_policy)) if poll_policy else PollPolicy()
        self.end_from_trigger = end_from_trigger
        self.store = None if store is None else StoreRequest.from_dict(store)
        self.resume_not_before = resume_not_before
        # A task created here without the user's own callBackUrl gets the plugin's; a job's creator says.
        self.await_callback = await_callback or bool(self.create and not self.create.body.get("callBackUrl"))

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "kie_conn_id": self.kie_conn_id,
            "job": self.job.to_dict() if self.job else None,
            "create": self.create.to_dict() if self.create else None,
            "poll_policy": self.poll_policy.to_dict(),
            "end_from_trigger": self.end_from_trigger,
            "store": self.store.to_dict() if self.store else None,
            "resume_not_before": self.resume_not_before,
            "await_callback": self.await_callback,
        }

    def __repr__(self) -> str:
        what = f"kie_task_id={self.job.kie_task_id!r}" if self.job else "create=..."
        return f"<KieTaskTrigger {what} kie_conn_id={self.kie_conn_id!r}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await self._run()
        # Only a triggerer that owns the task instance can end it; `airflow dags test` runs triggers
        # without one and resumes the task with whatever event it gets.
        if self.end_from_trigger and event.status is EventStatus.SUCCESS and self.task_instance is not None:
            assert event.task is not None and event.job is not None
            self.log.info(
                "Kie task %s succeeded; ending the Airflow task from the triggerer", event.job.kie_task_id
            )
            xcoms = {**result_xcoms(event.task, event.stored), **link_xcoms(event.task.result_urls)}
            yield await end_task_in_triggerer(self.task_instance, xcoms)
            return
        await settle_before_resume(self, self.resume_not_before)
        yield TriggerEvent(event.to_dict())

    async def _run(self) -> KieTaskEvent:
        """The task as a batch of one (:class:`~airflow_provider_kie.batch.BatchRun`): created under the
        key's limiter and the batch's ledger in XCom, waited for, its results stored."""
        create, ti = self.create, self.task_instance
        try:
            async with KieAsyncHook(
                self.kie_conn_id, retry_ambiguous_create=bool(create and create.retry_ambiguous_create)
            ) as hook:
                callbacks = await callbacks_for(hook, self.kie_conn_id, ti)
                target = None if ti is None else CallbackTarget.of(self.kie_conn_id, ti)
                run = BatchRun(
                    hook,
                    [self._item()],
                    timeout=create.timeout if create else 0.0,
                    poll_policy=self.poll_policy,
                    log=self.log,
                    record=BatchRecord({0: self.job} if self.job else {}),
                    ledger=self._ledger if create else None,
                    output_path=self.store.output_path if self.store else None,
                    retry_ambiguous_create=bool(create and create.retry_ambiguous_create),
                    callbacks=callbacks,
                    callback_for=None if target is None else lambda _: target,
                    kept_awaited=self.await_callback,
                )
                (event,) = await run.events()
                return event
        except Exception as error:  # an XCom the ledger could not read or write
            self.log.exception("Kie task %s: unexpected error", self.job and self.job.kie_task_id)
            return KieTaskEvent.errored(self.job, error)

    def _item(self) -> BatchItem:
        provenance = (self.store.provenance if self.store else None) or {}
        body = self.create.body if self.create else {"input": provenance.get("input")}
        return BatchItem(body, [str(source) for source in provenance.get("sources") or ()])

    def _ledger(self) -> BatchLedger:
        ti = self.task_instance

        async def publish(job: KieJobRef) -> None:  # where users, the receiver and the gallery look
            await push_xcoms(ti, {XCOM_KIE_TASK_ID: job.kie_task_id, XCOM_KIE_TASK_DEADLINE: job.deadline})

        return BatchLedger(*xcom_store(ti), log=self.log, legacy=self._legacy_record, on_created=publish)

    async def _legacy_record(self) -> BatchRecord:
        """What a run of 0.1.0 kept: its create's claim (``kie_create_sent``, written before
        anything else), then the task's id."""
        assert self.create is not None
        ti = self.task_instance
        claim = await pull_xcom(ti, XCOM_KIE_CREATE_SENT)
        if claim is None:
            return BatchRecord()
        kie_task_id = await pull_xcom(ti, XCOM_KIE_TASK_ID)
        if kie_task_id:
            deadline = await pull_xcom(ti, XCOM_KIE_TASK_DEADLINE) or time.time() + self.create.timeout
            return BatchRecord({0: KieJobRef(str(kie_task_id), float(deadline))})
        # 0.1.0 marked a create sent with its epoch seconds; 0.2.0 with {"at", "by", "sent"}.
        sent = isinstance(claim, (int, float)) or (isinstance(claim, Mapping) and bool(claim.get("sent")))
        return BatchRecord({}, {0} if sent else set())


def __getattr__(name: str) -> Any:
    # KieStartTrigger moved to triggers/start.py (which imports this module, so not imported at the top);
    # tasks serialized with this path still find it here.
    if name == "KieStartTrigger":
        from airflow_provider_kie.triggers.start import KieStartTrigger

        return KieStartTrigger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
