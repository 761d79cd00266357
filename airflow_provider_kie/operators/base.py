"""The one shell of every Kie operator around the engine: the connection and its hook, the wait's poll
policy and timeout, the jobs made from the rendered fields (validated, their files read and uploaded
once), where the task starts (the triggerer, or a worker that runs the jobs itself or defers them), and
how it ends. A single task and a batch differ only in how their fields make jobs' inputs
(:class:`~airflow_provider_kie.inputs.InputSpec`) and in the XCom a single job leaves."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseOperator, conf

from airflow_provider_kie import inputs, ledger, models, storage
from airflow_provider_kie.callbacks import CallbackTarget
from airflow_provider_kie.compat import (
    MAPPED_TASKS_START_ON_WORKERS,
    TRIGGER_STARTS_TASKS,
    TRIGGER_WRITES_XCOM,
    resume_not_before,
    start_trigger_args,
)
from airflow_provider_kie.connection import DEFAULT_CONN_ID
from airflow_provider_kie.events import Job, JobOutcome, JobRecord, JobsEvent, Status, check_policy
from airflow_provider_kie.exceptions import KieError, KieInputError
from airflow_provider_kie.links import KieResultLink
from airflow_provider_kie.results import finish, may_end_in_triggerer, raise_for
from airflow_provider_kie.waiting import PollPolicy

if TYPE_CHECKING:
    from airflow_provider_kie.hooks.kie import KieHook


class KieOperatorBase(BaseOperator):
    """What every Kie operator takes and does (see :class:`~airflow_provider_kie.operators.kie.KieCreateTaskOperator`
    and :class:`~airflow_provider_kie.operators.batch.KieBatchOperator` for what each parameter means there).

    A subclass says how its rendered fields make its jobs' inputs (``input_spec``) and whether it runs one
    job (``single``: its XCom is that job's results and record, its failure that job's error) or many.
    """

    input_spec: ClassVar[inputs.InputSpec] = inputs.InputSpec()
    single: ClassVar[bool] = True
    operator_extra_links = (KieResultLink(),)

    def __init__(
        self,
        *,
        model: str = "",
        callback_url: str | None = None,
        output_path: Any = None,
        kie_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 3.0,
        timeout: timedelta = timedelta(minutes=30),
        retry_ambiguous_create: bool = False,
        end_from_trigger: bool = True,
        validate: models.Validate = True,
        on_item_failure: str = "fail",
        durable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.callback_url = callback_url
        self.output_path = output_path
        self.kie_conn_id = kie_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.retry_ambiguous_create = retry_ambiguous_create
        self.end_from_trigger = end_from_trigger
        self.validate = validate
        self.on_item_failure = on_item_failure
        self.durable = durable  # keep what was sent in the task state store, for a retry (Airflow >= 3.3)
        self.kie_result_urls: list[str] | None = None  # for KieResultLink, once known
        self._event: JobsEvent | None = None  # for lineage, once the jobs ended
        check_wait_arguments(poll_interval, timeout)
        check_policy(on_item_failure)
        self._start_in_triggerer()  # last: a subclass sets its fields before calling this __init__

    @property
    def waits(self) -> bool:
        """Whether the task waits for its jobs to end (``wait_for_completion`` of a single task)."""
        return True

    @cached_property
    def hook(self) -> KieHook:
        # Imported when a task runs: a DAG file's parse needs no HTTP client code.
        from airflow_provider_kie.hooks.kie import KieHook

        return KieHook(self.kie_conn_id, retry_ambiguous_create=self.retry_ambiguous_create)

    @property
    def poll_policy(self) -> PollPolicy:
        return PollPolicy(initial_interval=self.poll_interval)

    def docs_url(self) -> str | None:
        """The connection's ``docs_url``, read only when a page is (the catalog refused an input); a
        connection that cannot be read yet leaves ``KIE_DOCS_URL`` or Kie's docs (the create will say
        what is wrong with it)."""
        try:
            return self.hook.settings.docs_url
        except (KieError, AirflowNotFoundException):
            return None

    # ------------------------------------------------------------------ the jobs

    def field_values(self) -> dict[str, Any]:
        """The fields the input spec reads, as rendered."""
        return {name: getattr(self, name) for name in self.input_spec.reads}

    def job_inputs(self) -> list[Any]:
        """Each job's ``input``, from the rendered fields (a subclass that makes them itself starts on a
        worker)."""
        return inputs.expand(self.input_spec, self.field_values())

    def builds_inputs_itself(self) -> bool:
        return type(self).job_inputs is not KieOperatorBase.job_inputs

    def prepared(self) -> list[inputs.Prepared]:
        """Every job's input made from the rendered fields, validated, its files read and checked: bad
        input fails here, before any request."""
        return inputs.prepare(
            self.model,
            self.job_inputs(),
            callback_url=self.callback_url,
            validate=self.validate,
            docs_url=self.docs_url,
            parameter=self.input_spec.items or "input",
            single=self.single,
        )

    # ------------------------------------------------------------------ where it starts

    def worker_reason(self) -> str | None:
        """None if this task can start in the triggerer, else why a worker must start it."""
        if not (TRIGGER_STARTS_TASKS and self.deferrable and self.waits):
            return "only deferrable tasks that wait, on Airflow 3.3 or later, start in the triggerer"
        if type(self).execute is not KieOperatorBase.execute or self.builds_inputs_itself():
            return f"{type(self).__name__} overrides execute or how its inputs are made, which a worker runs"
        if self.on_execute_callback:
            return "it has an on_execute_callback, which a worker runs"
        return inputs.worker_reason(self.input_spec, self.field_values(), self.model)

    def _start_in_triggerer(self) -> None:
        """Decide, once every field is set, whether the triggerer starts this task; if so, with the
        fields as written (Airflow renders them in the triggerer)."""
        reason = self.worker_reason()
        self._worker_reason = reason
        self.start_from_trigger = reason is None
        self.start_trigger_args = None
        if reason is None:
            fields = self.field_values()
            self.start_trigger_args = start_trigger_args(
                "airflow_provider_kie.triggers.start.KieStartTrigger",
                {
                    "spec": self.input_spec.to_dict(),
                    "field_names": list(fields),
                    "callback_url": self.callback_url,
                    "validate": self.validate,
                    **self._trigger_settings(output_path=self.output_path),
                    **fields,
                },
            )

    # ------------------------------------------------------------------ the shells

    def execute(self, context: Any) -> Any:
        if TRIGGER_STARTS_TASKS and self.deferrable and self.waits:
            mapped = getattr(context.get("ti"), "map_index", -1) not in (-1, None)
            reason = MAPPED_TASKS_START_ON_WORKERS if mapped else getattr(self, "_worker_reason", None)
            self.log.info("Started on a worker, not in the triggerer: %s", reason or "Airflow ran it there")
        prepared = self.prepared()  # before any request: bad input never costs a call
        folder = storage.writable_folder(self.output_path)
        store = context.get("task_state_store") if self.durable else None
        record = ledger.retry_record(store.get) if store is not None else JobRecord()
        try:
            # A job an earlier try created needs no upload: its files were uploaded then.
            done = set(record.jobs) | record.sent
            jobs = [
                p.uploaded(self._upload, self.hook.settings.upload_base_url)
                if p.files and i not in done
                else p.job
                for i, p in enumerate(prepared)
            ]
            return self._run(context, jobs, record, store, folder)
        except KieError as error:
            raise_for(error)

    def _run(self, context: Any, jobs: list[Job], record: JobRecord, store: Any, folder: Any) -> Any:
        """Defer the jobs to the triggerer, or run them here, and finish."""
        if not (self.deferrable and self.waits and TRIGGER_WRITES_XCOM):
            self.hook.settings  # noqa: B018 - here, a connection that cannot serve fails before any job
        ended: dict[int, JobOutcome] = {}
        if self.deferrable and self.waits and not TRIGGER_WRITES_XCOM:
            # Airflow 2's triggers cannot keep what they send: the jobs are created here, then waited for
            # in the triggerer; a create that failed is reported (never sent again), the others waited
            # for here.
            created = asyncio.run(self._run_here(context, jobs, record, store, folder, wait=False))
            record = created.record
            ended = {o.index: o for o in created.outcomes if o.status is not Status.CREATED}
        if self.deferrable and self.waits and not ended:
            from airflow_provider_kie.triggers.jobs import KieJobsTrigger  # when a task defers, not at parse

            settings = self._trigger_settings(output_path=folder)
            trigger = KieJobsTrigger(
                jobs=jobs, record=record, resume_not_before=resume_not_before(), **settings
            )
            self.defer(trigger=trigger, method_name="execute_complete")
        return self.finish(
            context,
            asyncio.run(self._run_here(context, jobs, record, store, folder, wait=self.waits, ended=ended)),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Resume after the trigger: keep what a retry resumes, push the results, fail or return."""
        parsed = JobsEvent.from_dict(event)
        if parsed.needs_worker is not None:  # started in the triggerer, which handed it over
            self.log.info("Continuing on a worker: %s", parsed.needs_worker)
            return self.execute(context)
        return self.finish(context, parsed)

    def finish(self, context: Any, event: JobsEvent) -> Any:
        self._event = event
        return finish(
            context,
            event,
            single=self.single,
            policy=self.on_item_failure,
            model=self.model,
            keep=self.durable,
        )

    async def _run_here(
        self,
        context: Any,
        jobs: list[Job],
        record: JobRecord,
        store: Any,
        folder: Any,
        *,
        wait: bool,
        ended: dict[int, JobOutcome] | None = None,
    ) -> JobsEvent:
        """The jobs on this worker: created, waited for and stored by the one engine, the ledger in the
        task state store (no other run shares it: no election), each create marked before it leaves."""
        from airflow_provider_kie.hooks.kie import KieAsyncHook
        from airflow_provider_kie.jobs import JobRun
        from airflow_provider_kie.ledger import Ledger, in_memory, task_state_store

        log, ti = self.log, context["ti"]

        def new_ledger() -> Ledger:
            return Ledger(*(in_memory() if store is None else task_state_store(store)), log=log, elect=False)

        async with KieAsyncHook(self.kie_conn_id, retry_ambiguous_create=self.retry_ambiguous_create) as hook:
            run = JobRun(
                hook,
                jobs,
                timeout=self.timeout.total_seconds(),
                poll_policy=self.poll_policy,
                log=log,
                record=record,
                ledger=new_ledger,
                output_path=None if folder is None else str(folder),
                retry_ambiguous_create=self.retry_ambiguous_create,
                # A task not waited for here may be by a deferred sensor, or by this task's trigger
                # (Airflow 2): both listen for the callback.
                callback_for=None if wait else CallbackTarget.of(self.kie_conn_id, ti).for_item,
                wait=wait,
                ended=ended,
            )
            outcomes = await run.run()
        return JobsEvent(outcomes, run.record)

    def _trigger_settings(self, *, output_path: Any) -> dict[str, Any]:
        return {
            "kie_conn_id": self.kie_conn_id,
            "timeout": self.timeout.total_seconds(),
            "poll_policy": self.poll_policy.to_dict(),
            "output_path": None if output_path is None else str(output_path),
            "retry_ambiguous_create": self.retry_ambiguous_create,
            "on_item_failure": self.on_item_failure,
            "end_from_trigger": may_end_in_triggerer(self, log=False),
            "single": self.single,
            "model": self.model,
        }

    def _upload(self, content: bytes, file_name: str) -> str:
        return self.hook.upload_file(content, upload_path=inputs.UPLOAD_PATH, file_name=file_name)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage for the OpenLineage provider: the inputs as given (files or URLs), what was made
        (stored files, else Kie's URLs) and a ``kie_jobs`` run facet (model, Kie task ids, states, credits)."""
        from airflow_provider_kie import lineage

        try:
            given = [source for p in self.prepared() for source in p.job.sources]
        except KieError:
            given = []
        return lineage.jobs_lineage(self.model, given, self._event.outcomes if self._event else [])

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)


def check_wait_arguments(poll_interval: Any, timeout: Any, interval_name: str = "poll_interval") -> None:
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
        raise KieInputError(interval_name, f"must be a positive number of seconds, got {poll_interval!r}")
    if not isinstance(timeout, timedelta) or timeout.total_seconds() <= 0:
        raise KieInputError("timeout", f"must be a positive datetime.timedelta, got {timeout!r}")
