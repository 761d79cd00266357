"""KieJobsTrigger: a task's Kie jobs created, waited for and stored in the triggerer, under the key's limiter."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_kie.callbacks import CallbackTarget
from airflow_provider_kie.compat import end_task_in_triggerer, push_xcoms, settle_before_resume, xcom_store
from airflow_provider_kie.events import Job, JobOutcome, JobRecord, JobRef, JobsEvent, check_policy
from airflow_provider_kie.hints import callbacks_for
from airflow_provider_kie.hooks.kie import KieAsyncHook
from airflow_provider_kie.jobs import JobLog, JobRun
from airflow_provider_kie.ledger import TASK_ID_KEY, Ledger, legacy_record
from airflow_provider_kie.links import link_xcoms
from airflow_provider_kie.results import result_xcoms
from airflow_provider_kie.waiting import PollPolicy


class KieJobsTrigger(BaseTrigger):
    """Create (Airflow 3) and wait for every job of a task; yield one :class:`~airflow_provider_kie.events.JobsEvent`.

    ``jobs`` are :class:`~airflow_provider_kie.events.Job` dicts (a validated create body, its files
    uploaded; no body: a Kie task created elsewhere, in ``record``); ``record`` a
    :class:`~airflow_provider_kie.events.JobRecord` dict of what an earlier try sent (waited for, not
    created again). Both travel as JSON text: Airflow decodes a trigger's kwargs on the triggerer's
    event loop, and text is one value however many jobs it holds. What is sent is kept in XCom as it
    happens (:class:`~airflow_provider_kie.ledger.Ledger`), so a restarted trigger, or a second run of it
    during a triggerer HA hand-over, waits for the tasks that exist and reports a job whose createTask
    was in flight as an ambiguous create. A single job's Kie task id is in XCom ``kie_task_id`` as soon
    as it exists. Only JSON-safe values are serialized, never the key.

    With ``end_from_trigger``, jobs that all succeeded (or any, with ``on_item_failure="report"`` and
    more than one job) end the Airflow task here with the XCom a worker would leave; otherwise the task
    resumes on a worker, not before ``resume_not_before`` (see
    :data:`~airflow_provider_kie.compat.RESUME_SETTLE_SECONDS`).
    """

    def __init__(
        self,
        *,
        jobs: str | Sequence[Job | Mapping[str, Any]],
        timeout: float,
        record: str | JobRecord | Mapping[str, Any] | None = None,
        kie_conn_id: str = "kie_default",
        poll_policy: Mapping[str, Any] | None = None,
        output_path: str | None = None,
        retry_ambiguous_create: bool = False,
        on_item_failure: str = "fail",
        end_from_trigger: bool = False,
        single: bool = False,
        model: str = "",
        resume_not_before: float | None = None,
        kept_awaited: bool = False,
        legacy: bool = False,
    ) -> None:
        super().__init__()
        check_policy(on_item_failure)
        self.jobs = jobs if isinstance(jobs, str) else json.dumps([_as_dict(job) for job in jobs])
        self.record = record if isinstance(record, str) else json.dumps(_as_dict(record or {}))
        self.timeout = float(timeout)
        self.kie_conn_id = kie_conn_id
        self.poll_policy = PollPolicy.from_dict(dict(poll_policy)) if poll_policy else PollPolicy()
        self.output_path = output_path
        self.retry_ambiguous_create = retry_ambiguous_create
        self.on_item_failure = on_item_failure
        self.end_from_trigger = end_from_trigger
        self.single = single
        self.model = model
        self.resume_not_before = resume_not_before
        # Tasks in the record that a run created with the plugin's callback URL: await their hint.
        self.kept_awaited = kept_awaited
        self.legacy = legacy  # a 0.1.0 trigger's: read what it kept in XCom

    @classmethod
    def waiting_for(cls, kie_task_id: str, deadline: float, **kwargs: Any) -> KieJobsTrigger:
        """A trigger that only waits for one Kie task created elsewhere (a sensor's), until ``deadline``."""
        record = JobRecord({0: JobRef(kie_task_id, deadline)})
        return cls(
            jobs=[Job()], record=record, timeout=max(deadline - time.time(), 0.0), single=True, **kwargs
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "jobs": self.jobs,
            "timeout": self.timeout,
            "record": self.record,
            "kie_conn_id": self.kie_conn_id,
            "poll_policy": self.poll_policy.to_dict(),
            "output_path": self.output_path,
            "retry_ambiguous_create": self.retry_ambiguous_create,
            "on_item_failure": self.on_item_failure,
            "end_from_trigger": self.end_from_trigger,
            "single": self.single,
            "model": self.model,
            "resume_not_before": self.resume_not_before,
            "kept_awaited": self.kept_awaited,
            "legacy": self.legacy,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kie_conn_id={self.kie_conn_id!r}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Thousands of jobs take a while to decode: in a thread, not on the triggerer's loop; a few, here.
        decoded = self._decoded() if len(self.jobs) < SMALL else await asyncio.to_thread(self._decoded)
        event = await self.run_jobs(*decoded)
        ti = self.task_instance
        acceptable = not event.failed or (self.on_item_failure == "report" and not self.single)
        # Only a triggerer that owns the task instance can end it; `airflow dags test` runs triggers
        # without one and resumes the task with whatever event it gets.
        if self.end_from_trigger and acceptable and ti is not None:
            if not self.single:
                for line in JobLog(len(event.outcomes), self.log).lines(event.outcomes):
                    line()
                    await asyncio.sleep(0)  # a line may wait for the triggerer's log pipe
            if self.single:
                self.log.info(
                    "Kie task %s succeeded; ending the Airflow task from the triggerer",
                    event.outcomes[0].kie_task_id,
                )
            else:
                self.log.info("Kie jobs ended; ending the Airflow task from the triggerer")
            # Thousands of outcomes take a while to convert: in a thread, not on the triggerer's loop.
            xcoms = await _off_loop(len(event.outcomes), result_xcoms, event, single=self.single)
            if self.single:  # the rendered link a worker's finalize would have left
                xcoms.update(link_xcoms(event.outcomes[0].kie_urls))
            yield await end_task_in_triggerer(ti, xcoms)
            return
        await settle_before_resume(self, self.resume_not_before)
        yield TriggerEvent(await _off_loop(len(event.outcomes), event.to_dict))

    async def run_jobs(self, jobs: list[Job], record: JobRecord) -> JobsEvent:
        ti = self.task_instance
        load, save = xcom_store(ti)

        async def publish(ref: JobRef) -> None:  # where users and the gallery look for a single job
            await push_xcoms(ti, {TASK_ID_KEY: ref.kie_task_id})

        async def legacy() -> JobRecord:
            return await legacy_record(load, self.timeout)

        async with KieAsyncHook(self.kie_conn_id, retry_ambiguous_create=self.retry_ambiguous_create) as hook:
            callbacks = await callbacks_for(hook, self.kie_conn_id, ti)
            if callbacks is not None and len(jobs) > 1:
                self.log.info(
                    "Kie jobs: waiting for Kie's callbacks (polling each task every %.0f s or more "
                    "meanwhile, in case one is lost)",
                    callbacks.safety_net,
                )
            run = JobRun(
                hook,
                jobs,
                timeout=self.timeout,
                poll_policy=self.poll_policy,
                log=self.log,
                record=record,
                ledger=lambda: Ledger(
                    load,
                    save,
                    log=self.log,
                    legacy=legacy if self.legacy else None,
                    on_created=publish if self.single else None,
                ),
                output_path=self.output_path,
                retry_ambiguous_create=self.retry_ambiguous_create,
                callbacks=callbacks,
                callback_for=None if callbacks is None else CallbackTarget.of(self.kie_conn_id, ti).for_item,
                kept_awaited=self.kept_awaited,
            )
            try:
                outcomes = await run.run()
            except Exception as error:  # an XCom the ledger could not read or write
                self.log.exception("Kie jobs: unexpected error")
                outcomes = [
                    JobOutcome.errored(i, run.record.jobs.get(i), error, job.model)
                    for i, job in enumerate(jobs)
                ]
        return JobsEvent(outcomes, run.record)

    def _decoded(self) -> tuple[list[Job], JobRecord]:
        jobs = [Job.from_dict(job) for job in json.loads(self.jobs)]
        return jobs, JobRecord.from_dict(json.loads(self.record))


#: Fewer jobs (or characters of them) than this are handled on the loop: a thread costs more.
SMALL = 10_000


async def _off_loop(size: int, work: Any, *args: Any, **kwargs: Any) -> Any:
    if size * 1000 < SMALL:
        return work(*args, **kwargs)
    return await asyncio.to_thread(work, *args, **kwargs)


def _as_dict(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else dict(value)
