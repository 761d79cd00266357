"""KieTaskTrigger: creates and/or waits for one Kie task in the triggerer, without a worker slot."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_kie import ledger, storage
from airflow_provider_kie.api import CREATE_TASK, KieTask, TaskState
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
)
from airflow_provider_kie.compat import resume_not_before as resume_not_before
from airflow_provider_kie.events import CreateRequest, EventStatus, KieJobRef, KieTaskEvent, StoreRequest
from airflow_provider_kie.exceptions import KieAmbiguousCreateError, KieError, KieTimeoutError
from airflow_provider_kie.hints import callbacks_for
from airflow_provider_kie.hooks.kie import KieAsyncHook
from airflow_provider_kie.links import link_xcoms
from airflow_provider_kie.results import (
    XCOM_KIE_CREATE_SENT,
    XCOM_KIE_TASK_DEADLINE,
    XCOM_KIE_TASK_ID,
    result_xcoms,
)
from airflow_provider_kie.waiting import PollPolicy, wait_async


def _claimed_by_another(claim: Any, mine: str) -> bool:
    """A live claim of another run: one marked sent, or one whose election may still be under way."""
    if not isinstance(claim, Mapping) or claim.get("by") in (None, mine):
        return False
    return bool(claim.get("sent")) or time.time() - claim.get("at", 0.0) < ledger.CLAIM_STALE_SECONDS


class _CreateClaim:
    """The create's claim in XCom, ``{"at", "by", "sent"}``, kept as the hook's attempts leave and come
    back, so another run of the trigger (a restart, or an HA hand-over that runs it twice) can tell a
    request that may have reached Kie (sent, no id yet) from one that never left (not sent)."""

    def __init__(self, trigger: KieTaskTrigger, *, seen_absent: bool = False) -> None:
        assert trigger.create is not None
        self.trigger = trigger
        self.resend_ambiguous = trigger.create.retry_ambiguous_create
        self.by = uuid.uuid4().hex
        self.elected = False
        # The trigger has just read that there is no claim: the election below still settles a race,
        # and reading it again would only add a 404, which Airflow logs as an error.
        self.seen_absent = seen_absent

    async def sending(self) -> None:
        current = None if self.seen_absent else await self._read()
        self.seen_absent = False
        if _claimed_by_another(current, self.by) and not self.resend_ambiguous:
            raise _AnotherRunSends(current)
        if not self.elected:
            if not await self._write(sent=False):
                self.elected = True  # no XCom (a trigger run by hand): nobody else to agree with
                return
            # Airflow may run one trigger in two triggerers at once (an HA hand-over): each claims the
            # create, lets the other's claim land, and reads it back; only the last one sends.
            try:
                await asyncio.sleep(ledger.CLAIM_SETTLE_SECONDS)
            except asyncio.CancelledError:  # stopped before sending: withdraw the claim
                await asyncio.shield(self.trigger._push_xcoms({XCOM_KIE_CREATE_SENT: None}))
                raise
            kept = await self._read()
            if not (isinstance(kept, Mapping) and kept.get("by") == self.by):
                raise _AnotherRunSends(kept)
            self.elected = True
        await self._write(sent=True)

    async def not_sent(self) -> None:
        """Answered without a task (a 429, a rejected body): if this run stops before its next attempt,
        the next run may create."""
        await self._write(sent=False)

    async def _read(self) -> Any:
        return await pull_xcom(self.trigger.task_instance, XCOM_KIE_CREATE_SENT)

    async def _write(self, *, sent: bool) -> bool:
        claim = {"at": time.time(), "by": self.by, "sent": sent}
        return await self.trigger._push_xcoms({XCOM_KIE_CREATE_SENT: claim})


class _AnotherRunSends(Exception):
    """Another run of this trigger claimed the create first: this one sends nothing."""

    def __init__(self, claim: Any) -> None:
        self.claim = claim


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
        job = self.job
        try:
            async with KieAsyncHook(
                self.kie_conn_id,
                retry_ambiguous_create=bool(self.create and self.create.retry_ambiguous_create),
            ) as hook:
                if job is None:
                    job = await self._find_or_create(hook)
                task = await self._wait(hook, job)
            stored = None
            if self.store is not None and task.state is TaskState.SUCCESS:
                stored = await storage.persist_async(task, self.store.output_path, self.store.provenance)
                self.log.info(
                    "Kie task %s: %d result(s) stored in %s",
                    job.kie_task_id,
                    len(stored),
                    self.store.output_path,
                )
            return KieTaskEvent.finished(job, task, stored)
        except KieTimeoutError as error:
            return KieTaskEvent(EventStatus.TIMEOUT, job, message=str(error))
        except KieError as error:
            return KieTaskEvent.failed_with(job, error)
        except Exception as error:
            self.log.exception("Kie task %s: unexpected error", job and job.kie_task_id)
            return KieTaskEvent.failed_with(job, error)

    async def _wait(self, hook: KieAsyncHook, job: KieJobRef) -> KieTask:
        """Poll; when Kie calls this connection's ``/kie`` plugin back for the task (known when it was
        created so, else seen in its ``param`` on a read: a sensor's task), wait for the hint instead and
        poll only as a safety net (docs/callbacks.md)."""
        callbacks = await callbacks_for(hook, self.kie_conn_id, self.task_instance)
        if callbacks is None:
            return await wait_async(hook, job, self.poll_policy, self.log)
        wait = callbacks.wait_for(job, self.log, awaited=self.await_callback)
        return await wait_async(
            hook, job, self.poll_policy, self.log, wait.observe, wait.sleep, read_first=not wait.awaited
        )

    def _callback_target(self) -> CallbackTarget | None:
        return None if self.task_instance is None else CallbackTarget.of(self.kie_conn_id, self.task_instance)

    async def _find_or_create(self, hook: KieAsyncHook) -> KieJobRef:
        assert self.create is not None
        stored = await self._pull_xcoms()
        job = self._kept_job(stored)
        if job is not None:
            self.log.info(
                "Kie task %s was created before a triggerer restart; waiting for it", job.kie_task_id
            )
            return job
        claimed = stored.get(XCOM_KIE_CREATE_SENT)
        seen_absent = claimed is None
        body = self.create.body
        while True:
            if claimed and not self.create.retry_ambiguous_create:
                # Another run of this trigger claimed the create: it is still running (it keeps the id
                # soon), or it stopped; if its request had left, Kie may have the task: never pay twice.
                job = await self._created_by_another_triggerer(claimed)
                if job is not None:
                    return job
            try:
                task_id = await hook.create_task(
                    body["model"],
                    body["input"],
                    body.get("callBackUrl"),
                    claim=_CreateClaim(self, seen_absent=seen_absent),
                    callback_for=self._callback_target(),
                )
                break
            except _AnotherRunSends as other:
                claimed, seen_absent = other.claim, False
        job = KieJobRef.starting_now(task_id, self.create.timeout)
        self.log.info("Created Kie task %s (model %s)", job.kie_task_id, body["model"])
        await self._push_xcoms({XCOM_KIE_TASK_ID: job.kie_task_id, XCOM_KIE_TASK_DEADLINE: job.deadline})
        return job

    async def _created_by_another_triggerer(self, claimed: Any) -> KieJobRef | None:
        """The Kie task of a create another run of this trigger claimed, once it keeps the id. None if
        that run stopped before its request left (its claim withdrawn, or never marked sent within
        :data:`ledger.CLAIM_STALE_SECONDS`): nothing was sent, so this run may create. Ambiguous if the request
        left and no id came within :data:`ledger.CLAIM_LIVE_SECONDS`."""
        self.log.info("Another run of this trigger claimed its createTask; waiting for its id")
        while True:
            stored = await self._pull_xcoms()
            job = self._kept_job(stored)
            if job is not None:
                return job
            latest = stored.get(XCOM_KIE_CREATE_SENT)
            if isinstance(latest, (int, float)):  # 0.1.0 marked a create sent with its epoch seconds
                latest = {"at": float(latest), "sent": True}
            if not isinstance(latest, Mapping):
                return None
            age = time.time() - latest.get("at", 0.0)
            if not latest.get("sent"):
                if age >= ledger.CLAIM_STALE_SECONDS:
                    return None
            elif age >= ledger.CLAIM_LIVE_SECONDS:
                raise KieAmbiguousCreateError(
                    "a triggerer stopped while its createTask was in flight, so a Kie task may exist whose "
                    "id was never stored; it was not sent again",
                    operation=CREATE_TASK,
                )
            await asyncio.sleep(ledger.CLAIM_SETTLE_SECONDS)

    def _kept_job(self, stored: Mapping[str, Any]) -> KieJobRef | None:
        assert self.create is not None
        if not stored.get(XCOM_KIE_TASK_ID):
            return None
        deadline = stored.get(XCOM_KIE_TASK_DEADLINE) or time.time() + self.create.timeout
        return KieJobRef(stored[XCOM_KIE_TASK_ID], float(deadline))

    async def _push_xcoms(self, values: Mapping[str, Any]) -> bool:
        return await push_xcoms(self.task_instance, values)

    async def _pull_xcoms(self) -> dict[str, Any]:
        # A create is claimed before its id is kept: with no claim there is nothing else to read (each
        # key read and not found is a 404 that Airflow logs as an error in the triggerer's log).
        claim = await pull_xcom(self.task_instance, XCOM_KIE_CREATE_SENT)
        if claim is None:
            return {XCOM_KIE_CREATE_SENT: None}
        keys = (XCOM_KIE_TASK_ID, XCOM_KIE_TASK_DEADLINE)
        return {
            XCOM_KIE_CREATE_SENT: claim,
            **{key: await pull_xcom(self.task_instance, key) for key in keys},
        }


# KieStartTrigger moved to triggers/start.py; tasks serialized with this path still find it here.
from airflow_provider_kie.triggers.start import KieStartTrigger as KieStartTrigger  # noqa: E402
