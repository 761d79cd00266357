"""Batch operators: many Kie tasks in one Airflow task, created and waited for in one trigger."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_kie import inputs, models, storage
from airflow_provider_kie.compat import TRIGGER_WRITES_XCOM, resume_not_before
from airflow_provider_kie.events import BatchEvent, BatchRecord, ItemOutcome, check_policy

if TYPE_CHECKING:
    from airflow_provider_kie.batch import BatchItem
from airflow_provider_kie.exceptions import KieBatchItemsFailedError, KieError, KieInputError
from airflow_provider_kie.operators.base import KieOperatorBase
from airflow_provider_kie.results import (
    RETURN_VALUE,
    batch_asset_extra,
    describe_asset_events,
    may_end_in_triggerer,
)


class KieBatchOperator(KieOperatorBase):
    """Run one Kie task per item of ``inputs`` in a single Airflow task, and return every item's outcome.

    :param model: Kie Market model, e.g. ``"seedream/4.5-edit"``.
    :param inputs: a list of the model's ``input`` objects, or an XComArg of one (templated). Every item
        is validated before any request: one bad item fails the task, naming it, with no request made.
    :param callback_url: absolute http(s) URL Kie POSTs to when each task ends (templated).
    :param output_path: a folder URI (``file://``, ``s3://conn@bucket/prefix``...) to copy every result
        into, with a manifest per Kie task (templated).
    :param on_item_failure: ``"fail"`` (default): once every item has ended, fail the task if any item
        failed (a retry resumes the items already created and pays again only for those Kie failed);
        ``"report"``: succeed, and report failed items in ``return_value``.
    :param deferrable: create and wait in the triggerer (Airflow 3): the batch costs one worker run,
        which validates the items, uploads their files and defers.
    :param timeout: how long each item may take from its creation.
    :param retry_ambiguous_create: resend a createTask whose reply was lost (may pay twice).
    :param end_from_trigger: end the task in the triggerer when the batch is done, unless it has outlets,
        an on_success_callback or listeners, which only a worker honours.

    ``return_value``: one entry per item, in order: ``index``, ``status`` (success, failed, error,
    timeout), ``kie_task_id``, ``result`` (stored URIs, else Kie's result URLs), ``credits_consumed``,
    ``error`` and ``retryable``. On Airflow 2 the batch runs on the worker (a trigger cannot keep its
    record there).
    """

    template_fields: Sequence[str] = ("model", "inputs", "callback_url", "output_path")
    template_fields_renderers = {"inputs": "json"}
    ui_color = "#e6d9ff"
    #: The parameter that holds the items, as error messages name it.
    items_parameter: ClassVar[str] = "inputs"

    def __init__(self, *, inputs: Any = None, on_item_failure: str = "fail", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inputs = inputs
        self.on_item_failure = on_item_failure
        check_policy(on_item_failure)
        self._outcomes: list[ItemOutcome] = []  # every item's outcome, once known (for lineage)

    def item_inputs(self) -> list[Any]:
        """The rendered items, each the model's ``input``; subclasses build them from their own fields."""
        return _as_list(self.items_parameter, self.inputs)

    def execute(self, context: Any) -> Any:
        # The engine is imported when a task runs: a DAG file's parse needs none of it.
        from airflow_provider_kie.batch import BatchItem
        from airflow_provider_kie.ledger import BATCH_RECORD_KEY

        # Every item is validated and its files read before any request: a bad item costs no call.
        checked = [self._checked(index, item) for index, item in enumerate(self.item_inputs())]
        if not checked:
            self.log.info("Kie batch: no items, nothing to do")
            return []
        output = storage.writable_folder(self.output_path)
        store = context.get("task_state_store")
        record = BatchRecord.from_dict(store.get(BATCH_RECORD_KEY) if store is not None else None)
        if record.jobs or record.sent:
            self.log.info(
                "Kie batch: resuming %d Kie tasks created by an earlier try; %d items to create",
                len(record.jobs),
                len(checked) - len(record.jobs),
            )
        items = []
        for index, (checked_body, files, sources) in enumerate(checked):
            body = checked_body.body
            if index not in record.jobs and index not in record.sent:
                body = self.with_uploads(body, files)
            items.append(BatchItem(body, sources, list(checked_body.checked.unconfirmed)))
        output_path = None if output is None else str(output)
        if self.deferrable and TRIGGER_WRITES_XCOM:
            # Imported when a task defers: a DAG file's parse needs no trigger (nor the engine behind it).
            from airflow_provider_kie.triggers.batch import KieBatchTrigger

            self.defer(
                trigger=KieBatchTrigger(
                    items=[item.to_dict() for item in items],
                    timeout=self.timeout.total_seconds(),
                    record=record.to_dict(),
                    kie_conn_id=self.kie_conn_id,
                    poll_policy=self.poll_policy.to_dict(),
                    output_path=output_path,
                    retry_ambiguous_create=self.retry_ambiguous_create,
                    on_item_failure=self.on_item_failure,
                    end_from_trigger=may_end_in_triggerer(self),
                    resume_not_before=resume_not_before(),
                ),
                method_name="execute_complete",
            )
        if self.deferrable:
            self.log.info("Kie batch: Airflow 2's triggers cannot keep a batch's record; running it here")
        event = asyncio.run(self._run_here(items, record, output_path, store))
        return self._finish(context, event)

    async def _run_here(
        self, items: list[BatchItem], record: BatchRecord, output_path: str | None, store: Any
    ) -> BatchEvent:
        """The batch on this worker, its ledger in the task state store (no other run shares it, so no
        election), or in memory without one."""
        from airflow_provider_kie.batch import BatchRun
        from airflow_provider_kie.hooks.kie import KieAsyncHook
        from airflow_provider_kie.ledger import BatchLedger, in_memory

        def ledger() -> BatchLedger:
            if store is None:
                return BatchLedger(*in_memory(), log=self.log)

            async def load(key: str) -> Any:
                return store.get(key)

            async def save(key: str, value: Any) -> bool:
                store.set(key, value)
                return True

            return BatchLedger(load, save, log=self.log, elect=False)

        async with KieAsyncHook(self.kie_conn_id, retry_ambiguous_create=self.retry_ambiguous_create) as hook:
            run = BatchRun(
                hook,
                items,
                timeout=self.timeout.total_seconds(),
                poll_policy=self.poll_policy,
                log=self.log,
                record=record,
                ledger=ledger,
                output_path=output_path,
                retry_ambiguous_create=self.retry_ambiguous_create,
            )
            outcomes = await run.run()
        return BatchEvent(outcomes, run.record)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Resume after the batch trigger: report every item, keep what a retry resumes, fail or return."""
        return self._finish(context, BatchEvent.from_dict(event))

    def _finish(self, context: Any, event: BatchEvent) -> list[dict[str, Any]]:
        from airflow_provider_kie.batch import log_outcomes
        from airflow_provider_kie.ledger import BATCH_RECORD_KEY, OWNER_KEY

        self._outcomes = event.outcomes
        store = context.get("task_state_store")
        if store is not None:  # first: it is what a retry reads (and the ledger this try kept, not any more)
            store.set(BATCH_RECORD_KEY, event.record.for_retry(event.outcomes).to_dict())
            store.set(OWNER_KEY, {"by": None, "chunks": 0, "released": True})
        context["ti"].xcom_push(key=BATCH_RECORD_KEY, value=event.record.to_dict())
        log_outcomes(self.log, event.outcomes)
        failed = event.failed
        if failed and self.on_item_failure == "fail":
            # The per-item outcomes stay readable (trigger rule all_done downstream) though the task fails.
            context["ti"].xcom_push(key=RETURN_VALUE, value=event.return_value())
            summary = "; ".join(f"item {o.index}: {o.status.value}: {o.error}" for o in failed[:5])
            more = "; ..." if len(failed) > 5 else ""
            message = f"{len(failed)} of {len(event.outcomes)} items did not succeed ({summary}{more})"
            if any(o.retryable for o in failed):
                raise KieBatchItemsFailedError(message + "; a retry resumes the items already created")
            raise AirflowFailException(message + "; a retry would not change that")
        extra = batch_asset_extra(event.outcomes, self.model, stored=self.output_path is not None)
        describe_asset_events(context, extra)
        return event.return_value()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage for the OpenLineage provider: every distinct input (as given: files or URLs), every
        result made, and a ``kie_batch`` run facet (model, items, succeeded, Kie task ids, credits)."""
        from airflow_provider_kie import lineage

        given: list[Any] = []
        try:
            for item in self.item_inputs():
                if isinstance(item, Mapping):
                    body = models.create_task_body(
                        self.model, dict(item), None, files=True, validate=self.validate
                    )
                    given += models.file_inputs(self.model, body["input"])
        except KieError:
            pass
        return lineage.batch_lineage(self.model, given, self._outcomes)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)

    def _checked(self, index: int, item: Any) -> tuple[models.CheckedBody, list[inputs.LocalFile], list[str]]:
        """Item ``index`` as a checked createTask body, its files read and checked, and its sources as given."""
        where = f"{self.items_parameter}[{index}]"
        if not isinstance(item, Mapping):
            raise KieInputError(where, f"must be a dict of the model's input fields, got {item!r}")
        try:
            checked = models.checked_body(
                self.model,
                dict(item),
                self.callback_url,
                files=True,
                validate=self.validate,
                docs_url=self.docs_url,
            )
            files = inputs.read_files(checked.body["input"], checked.checked.entry)
        except KieInputError as error:
            raise KieInputError(f"{where}.{error.parameter}", str(error).split(": ", 1)[-1]) from None
        sources = [str(ref) for ref in models.file_inputs(self.model, checked.body["input"])]
        return checked, files, sources


def _as_list(parameter: str, value: Any) -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise KieInputError(parameter, f"must be a list of items, got {value!r}")
    return list(value)


class SeedreamEditBatchOperator(KieBatchOperator):
    """Edit images with ``seedream/4.5-edit``, one Kie task per item of ``edits``, in one Airflow task.

    :param edits: a list (or an XComArg of one) whose items are a prompt, or a dict of this model's
        fields (``prompt``, ``image_urls``, ``aspect_ratio``, ``quality``, ``nsfw_checker``) that
        override the operator's own (templated).
    :param prompt: the prompt of items that give none (templated).
    :param image_urls: the images of items that give none: URLs or files, uploaded once (templated).
    :param aspect_ratio: one of 1:1, 4:3, 3:4, 16:9, 9:16, 2:3, 3:2, 21:9 (templated).
    :param quality: ``basic`` (2K) or ``high`` (4K) (templated).
    :param nsfw_checker: Kie's optional extra content filter; omitted when None.

    Every other parameter is KieBatchOperator's.
    """

    kie_model = models.catalog_model(models.SEEDREAM_EDIT_MODEL)
    template_fields: Sequence[str] = (
        "edits",
        "prompt",
        "image_urls",
        "aspect_ratio",
        "quality",
        "callback_url",
        "output_path",
    )
    template_fields_renderers = {"edits": "json"}
    items_parameter = "edits"

    def __init__(
        self,
        *,
        edits: Any,
        prompt: str | None = None,
        image_urls: Any = None,
        aspect_ratio: str = "1:1",
        quality: str = "basic",
        nsfw_checker: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model=self.kie_model.name, **kwargs)
        self.edits = edits
        self.prompt = prompt
        self.image_urls = image_urls
        self.aspect_ratio = aspect_ratio
        self.quality = quality
        self.nsfw_checker = nsfw_checker

    def item_inputs(self) -> list[Any]:
        edits = _as_list(self.items_parameter, self.edits)
        given = {
            "prompt": self.prompt,
            "image_urls": self.image_urls,
            "aspect_ratio": self.aspect_ratio,
            "quality": self.quality,
            "nsfw_checker": self.nsfw_checker,
        }
        defaults = {name: value for name, value in given.items() if value is not None}
        return [
            {**defaults, "prompt": edit}
            if isinstance(edit, str)
            else {**defaults, **edit}
            if isinstance(edit, Mapping)
            else edit
            for edit in edits
        ]
