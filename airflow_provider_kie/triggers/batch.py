"""KieBatchTrigger: creates and waits for every item of a batch in the triggerer, under the key's limiter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_kie.batch import BatchItem, BatchRun, log_outcomes_async
from airflow_provider_kie.callbacks import CallbackTarget
from airflow_provider_kie.compat import end_task_in_triggerer, settle_before_resume, xcom_store
from airflow_provider_kie.events import BatchEvent, BatchRecord, check_policy
from airflow_provider_kie.hints import callbacks_for
from airflow_provider_kie.hooks.kie import KieAsyncHook
from airflow_provider_kie.ledger import BATCH_RECORD_KEY, BatchLedger
from airflow_provider_kie.results import RETURN_VALUE
from airflow_provider_kie.waiting import PollPolicy


class KieBatchTrigger(BaseTrigger):
    """Create (Airflow 3) and wait for every item of a batch; yield one event with every item's outcome.

    ``items`` are :class:`~airflow_provider_kie.batch.BatchItem` dicts (a validated createTask body with
    its files uploaded); ``record`` a :class:`~airflow_provider_kie.batch.BatchRecord` dict of what an
    earlier try sent (its Kie tasks are waited for, not created again). Both travel as JSON text: Airflow
    decodes a trigger's kwargs on the triggerer's event loop, and text is one value however many items
    it holds. What is sent is kept in XCom as it happens (:class:`~airflow_provider_kie.ledger.BatchLedger`),
    so a restarted trigger, or a second run of it during a triggerer HA hand-over, waits for the tasks
    that exist and reports an item whose createTask was in flight as an ambiguous create; XCom
    ``kie_batch`` has the whole record at the end.

    The event is a :class:`~airflow_provider_kie.events.BatchEvent`. With ``end_from_trigger``, a batch
    whose items all succeeded (or any batch, with ``on_item_failure="report"``) ends the Airflow task
    here with ``return_value`` = the results, so no worker resumes it.
    """

    def __init__(
        self,
        *,
        items: str | Sequence[Mapping[str, Any]],
        timeout: float,
        record: str | Mapping[str, Any] | None = None,
        kie_conn_id: str = "kie_default",
        poll_policy: Mapping[str, Any] | None = None,
        output_path: str | None = None,
        retry_ambiguous_create: bool = False,
        on_item_failure: str = "fail",
        end_from_trigger: bool = False,
        resume_not_before: float | None = None,
    ) -> None:
        super().__init__()
        check_policy(on_item_failure)
        self.items = items if isinstance(items, str) else json.dumps([dict(item) for item in items])
        self.record = record if isinstance(record, str) else json.dumps(dict(record or {}))
        self.timeout = float(timeout)
        self.kie_conn_id = kie_conn_id
        self.poll_policy = PollPolicy.from_dict(dict(poll_policy)) if poll_policy else PollPolicy()
        self.output_path = output_path
        self.retry_ambiguous_create = retry_ambiguous_create
        self.on_item_failure = on_item_failure
        self.end_from_trigger = end_from_trigger
        self.resume_not_before = resume_not_before

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "items": self.items,
            "timeout": self.timeout,
            "record": self.record,
            "kie_conn_id": self.kie_conn_id,
            "poll_policy": self.poll_policy.to_dict(),
            "output_path": self.output_path,
            "retry_ambiguous_create": self.retry_ambiguous_create,
            "on_item_failure": self.on_item_failure,
            "end_from_trigger": self.end_from_trigger,
            "resume_not_before": self.resume_not_before,
        }

    def __repr__(self) -> str:
        return f"<KieBatchTrigger kie_conn_id={self.kie_conn_id!r}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti = self.task_instance
        load, save = xcom_store(ti)

        async def legacy() -> BatchRecord:  # 0.1.0 kept the whole record as it went
            return BatchRecord.from_dict(await load(BATCH_RECORD_KEY))

        items, record = await asyncio.to_thread(self._decoded)  # thousands of items: not on the loop
        async with KieAsyncHook(self.kie_conn_id, retry_ambiguous_create=self.retry_ambiguous_create) as hook:
            callbacks = await callbacks_for(hook, self.kie_conn_id, ti)
            if callbacks is not None:
                self.log.info(
                    "Kie batch: waiting for Kie's callbacks (polling each task every %.0f s or more "
                    "meanwhile, in case one is lost)",
                    callbacks.safety_net,
                )
            run = BatchRun(
                hook,
                items,
                timeout=self.timeout,
                poll_policy=self.poll_policy,
                log=self.log,
                record=record,
                ledger=lambda: BatchLedger(load, save, log=self.log, legacy=legacy),
                output_path=self.output_path,
                retry_ambiguous_create=self.retry_ambiguous_create,
                callbacks=callbacks,
                callback_for=None if callbacks is None else CallbackTarget.of(self.kie_conn_id, ti).for_item,
            )
            outcomes = await run.run()
        event = BatchEvent(outcomes, run.record)
        acceptable = self.on_item_failure == "report" or not event.failed
        if self.end_from_trigger and acceptable and ti is not None:
            await log_outcomes_async(self.log, outcomes)
            self.log.info("Kie batch ended; ending the Airflow task from the triggerer")
            # Thousands of outcomes take a while to convert: in a thread, not on the triggerer's loop.
            xcoms = await asyncio.to_thread(
                lambda: {RETURN_VALUE: event.return_value(), BATCH_RECORD_KEY: run.record.to_dict()}
            )
            yield await end_task_in_triggerer(ti, xcoms)
            return
        await settle_before_resume(self, self.resume_not_before)
        yield TriggerEvent(await asyncio.to_thread(event.to_dict))

    def _decoded(self) -> tuple[list[BatchItem], BatchRecord]:
        items = [BatchItem.from_dict(item) for item in json.loads(self.items)]
        return items, BatchRecord.from_dict(json.loads(self.record))
