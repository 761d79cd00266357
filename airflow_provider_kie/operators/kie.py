"""KieCreateTaskOperator: submit a task to any Kie Market model, then wait (deferred or not) for it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import ResumableJobMixin

from airflow_provider_kie import inputs, models, storage
from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.callbacks import CallbackTarget
from airflow_provider_kie.compat import (
    MAPPED_TASKS_START_ON_WORKERS,
    TRIGGER_STARTS_TASKS,
    TRIGGER_WRITES_XCOM,
    resume_not_before,
)
from airflow_provider_kie.events import CreateRequest, EventStatus, KieJobRef, KieTaskEvent, StoreRequest
from airflow_provider_kie.exceptions import KieError, KieInputError, KieNotFoundError
from airflow_provider_kie.links import KieResultLink
from airflow_provider_kie.operators.base import KieOperatorBase
from airflow_provider_kie.operators.base import check_wait_arguments as check_wait_arguments  # as before
from airflow_provider_kie.results import (
    XCOM_KIE_TASK_ID,
    event_result,
    may_end_in_triggerer,
    raise_for,
    task_result,
)
from airflow_provider_kie.waiting import wait_sync

_NO_RESULT = object()


class KieCreateTaskOperator(ResumableJobMixin, KieOperatorBase):
    """Create one Kie task and, unless told otherwise, wait for it and return its result URLs.

    :param model: Kie Market model, e.g. ``"seedream/4.5-edit"``.
    :param input: the model's ``input`` object (templated). Catalog models are validated before any request.
    :param callback_url: absolute http(s) URL Kie POSTs to when the task ends (templated).
    :param kie_conn_id: connection of type ``kie``.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param wait_for_completion: if False, return the Kie task id right after creation.
    :param poll_interval: first poll interval in seconds; the policy backs off with the task's age.
    :param timeout: how long to wait for the task, as an absolute deadline set when it is created; it
        holds across deferral, triggerer restarts and retries that resume the same Kie task.
    :param validate: check ``input`` before any request: True (default) by the model's catalog entry,
        and what the entry refuses by Kie's current page, which decides (docs/models.md); ``"strict"``
        by the catalog entry alone; False sends it as given. A model outside the catalog is sent
        unvalidated, with a warning.
    :param retry_ambiguous_create: resend a createTask whose reply was lost (may pay twice).
    :param end_from_trigger: when deferred, a success ends the task in the triggerer with its XCom,
        without resuming on a worker; set False if a subclass must run ``execute_complete`` on success.
    :param output_path: a folder (URI such as ``file:///data/kie`` or ``s3://bucket/kie``, or an
        ``ObjectStoragePath``) to copy every result into before the task succeeds (templated); then
        ``return_value`` is the list of stored URIs. None: results stay at Kie's URLs.

    Deferrable on Airflow 3, the triggerer creates the Kie task: the worker only validates the input
    and defers, and the triggerer's one rate limiter paces every task to Kie's createTask limit. On
    Airflow 2 the worker creates it, then defers.

    XCom: ``return_value`` = list of result URLs; ``kie_task_id`` (pushed as soon as the task exists);
    ``kie_task`` = JSON record (state, result_urls, fail_code, fail_msg, credits_consumed, times).
    """

    template_fields: Sequence[str] = ("model", "input", "callback_url", "output_path")
    template_fields_renderers = {"input": "json"}
    operator_extra_links = (KieResultLink(),)
    ui_color = "#f0e6ff"
    # Key of the job reference in the task state store; renaming it breaks in-flight retries.
    external_id_key = "kie_task"

    def __init__(
        self,
        *,
        input: Mapping[str, Any] | None = None,
        wait_for_completion: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input = input
        self.wait_for_completion = wait_for_completion
        self.kie_result_urls: list[str] | None = None  # for KieResultLink, once known
        # State of one run, shared by the ResumableJobMixin methods below (see their contract).
        self._body: dict[str, Any] = {}
        self._files: list[inputs.LocalFile] = []  # file inputs, read and checked, to upload
        self._output: Any = None  # output_path as a checked ObjectStoragePath
        self._result: Any = _NO_RESULT
        self._finished: tuple[KieTask, list[str]] | None = None  # for lineage: the Kie task, return_value

    def build_input(self) -> dict[str, Any]:
        """The rendered ``input``; subclasses build it from their own typed fields."""
        if not isinstance(self.input, Mapping):
            raise KieInputError("input", f"must be a dict of the model's input fields, got {self.input!r}")
        return dict(self.input)

    # Starting in the triggerer (Airflow >= 3.3). Airflow calls this hook after the __init__ of each class
    # of the hierarchy, so the last call, after the outermost __init__, sees every field.
    def _validate_start_from_trigger_kwargs(self) -> None:
        try:
            self._worker_start_reason = self._why_start_on_a_worker()
            args = None if self._worker_start_reason else self._start_trigger_args()
        except AttributeError:  # an inner __init__ of the hierarchy: the subclass has not set its fields
            self._worker_start_reason, args = "not built yet", None
        self.start_from_trigger = args is not None
        self.start_trigger_args = args
        validate = getattr(super(), "_validate_start_from_trigger_kwargs", None)
        if validate is not None:
            validate()

    def _why_start_on_a_worker(self) -> str | None:
        """None if this task can start in the triggerer, else why it cannot."""
        if not (TRIGGER_STARTS_TASKS and getattr(self, "deferrable", False) and self.wait_for_completion):
            return "only deferrable tasks that wait, on Airflow 3.3 or later, start in the triggerer"
        cls = type(self)
        if cls.execute is not KieCreateTaskOperator.execute or "build_input" in _own_overrides(cls):
            return f"{cls.__name__} overrides execute or build_input, which only a worker runs"
        if self.on_execute_callback:
            return "it has an on_execute_callback, which a worker runs"
        values = [getattr(self, name, None) for name in self.template_fields]
        if any(_holds(value, _is_xcom_arg) for value in values):
            return "an argument comes from an upstream task, which Airflow resolves only on a worker"
        typed = getattr(self, "kie_model", None)
        given = {f.name: getattr(self, f.name) for f in typed.fields} if typed is not None else self.input
        if isinstance(given, Mapping) and _holds(models.file_inputs(self.model, given), _is_file):
            return "its input names files, which a worker reads and uploads"
        return None

    def _start_trigger_args(self) -> Any:
        from airflow.triggers.base import StartTriggerArgs

        typed = getattr(self, "kie_model", None)
        fields = {f.name: getattr(self, f.name) for f in typed.fields} if typed is not None else {}
        return StartTriggerArgs(
            trigger_cls="airflow_provider_kie.triggers.start.KieStartTrigger",
            next_method="execute_complete",
            trigger_kwargs={
                "model": self.model,
                "input": None if typed is not None else self.input,
                "typed_fields": list(fields) if typed is not None else None,
                "callback_url": self.callback_url,
                "output_path": None if self.output_path is None else str(self.output_path),
                "kie_conn_id": self.kie_conn_id,
                "timeout": self.timeout.total_seconds(),
                "retry_ambiguous_create": self.retry_ambiguous_create,
                "poll_policy": self.poll_policy.to_dict(),
                "end_from_trigger": may_end_in_triggerer(self, log=False),
                "validate": self.validate,
                **fields,
            },
            next_kwargs=None,
            timeout=None,
        )

    def execute(self, context: Any) -> Any:
        if TRIGGER_STARTS_TASKS and self.deferrable and self.wait_for_completion:
            ti = context.get("ti")
            mapped = getattr(ti, "map_index", -1) not in (-1, None)
            self.log.info(
                "Started on a worker, not in the triggerer: %s",
                MAPPED_TASKS_START_ON_WORKERS
                if mapped
                else getattr(self, "_worker_start_reason", None) or "Airflow ran it on a worker",
            )
        # Everything is validated before any request (the mixin's first is a status read): bad input
        # never costs a call. File inputs are read and checked now, uploaded only if a task is submitted.
        checked = self._checked_body()
        self._body = checked.body
        self._files = inputs.read_files(self._body["input"], checked.checked.entry)
        self._output = storage.writable_folder(self.output_path)
        self._result = _NO_RESULT
        try:
            return self.execute_resumable(context)
        except KieError as error:
            raise_for(error)

    # ResumableJobMixin adapter. The external id is a KieJobRef dict; the mixin persists what
    # submit_job returns before it calls poll_until_complete, which every path reaches (fresh, resumed,
    # wait_for_completion=False) and which pushes XCom kie_task_id; remember() also stores the job of a
    # task a trigger created, which the mixin never sees. On a fresh submit the mixin calls
    # poll_until_complete then get_job_result, but on a reconnect it returns poll_until_complete's
    # value; so poll_until_complete returns the result and get_job_result builds it once per run.

    def submit_job(self, context: Any) -> dict[str, Any]:
        """Create the Kie task here, or defer to a trigger that creates it (Airflow 3, deferrable)."""
        timeout = self.timeout.total_seconds()
        self._body = self.with_uploads(self._body, self._files)  # the worker reads the files
        if self.deferrable and self.wait_for_completion and TRIGGER_WRITES_XCOM:
            # One process, one rate limiter: a batch's createTasks queue in the triggerer, not in worker
            # slots, and never burst past Kie's limit from many workers at once.
            create = CreateRequest(self._body, timeout, self.retry_ambiguous_create)
            self._defer(create=create.to_dict())
        body = self._body
        kie_task_id = self.hook.create_task(
            body["model"],
            body["input"],
            body.get("callBackUrl"),
            validate=False,  # validated with the operator's own setting, before the uploads
            # A deferred wait listens for Kie's callback, and so may a deferred sensor of a task this
            # operator does not wait for; a worker's wait only polls (docs/callbacks.md).
            callback_for=CallbackTarget.of(self.kie_conn_id, context["ti"])
            if (self.deferrable or not self.wait_for_completion) and self.hook.settings.callback_base_url
            else None,
        )
        return KieJobRef.starting_now(kie_task_id, timeout).to_dict()

    def get_job_status(self, external_id: Any, context: Any) -> str:
        try:
            return self.hook.get_task(KieJobRef.from_dict(external_id).kie_task_id).state.value
        except KieNotFoundError:  # "recordInfo is null" right after creation
            return TaskState.WAITING.value

    def is_job_active(self, status: str) -> bool:
        return not TaskState.parse(status).is_terminal

    def is_job_succeeded(self, status: str) -> bool:
        return status == TaskState.SUCCESS.value

    def poll_until_complete(self, external_id: Any, context: Any) -> Any:
        job = KieJobRef.from_dict(external_id)
        self.remember(context, job, store=False)
        if self.wait_for_completion and self.deferrable:
            self._defer(job=job.to_dict(), await_callback=not self.callback_url)
        if self.wait_for_completion:
            self._result = self._task_result(context, wait_sync(self.hook, job, self.poll_policy, self.log))
        return self.get_job_result(external_id, context)

    def get_job_result(self, external_id: Any, context: Any) -> Any:
        if self._result is _NO_RESULT:
            job = KieJobRef.from_dict(external_id)
            if self.wait_for_completion:  # only when the mixin found the task succeeded: no wait ran
                self.remember(context, job, store=False)
                self._result = self._task_result(context, self.hook.get_task(job.kie_task_id))
            else:
                self._result = job.kie_task_id
        return self._result

    def execute_complete(self, context: Any, event: dict[str, Any]) -> list[str]:
        """Resume after the trigger: return the URLs, or fail with the task's failCode and failMsg."""
        parsed = KieTaskEvent.from_dict(event)
        if parsed.status is EventStatus.NEEDS_WORKER:  # started in the triggerer, which handed it over
            self.log.info("Continuing on a worker: %s", parsed.message)
            return self.execute(context)
        if parsed.job is not None:
            # A task the triggerer created: keep it where a retry looks, so the retry resumes it.
            self.remember(context, parsed.job, store=True)
        if self.output_path is not None and parsed.stored is None and parsed.status is EventStatus.SUCCESS:
            # Not copied by the trigger (one serialized by an older version): copy here. A resumed task is
            # a new operator, so rebuild what the copy needs.
            self._body = self._validated_body()
            self._output = storage.writable_folder(self.output_path)
        result = event_result(
            context, parsed, self.kie_conn_id, output=self._output, provenance=self._provenance()
        )
        if parsed.task is not None:
            self._finished = (parsed.task, result)
        return result

    def remember(self, context: Any, job: KieJobRef, *, store: bool) -> None:
        """Make ``job`` findable: XCom ``kie_task_id`` for users, the task state store for a retry."""
        task_state_store = context.get("task_state_store")
        if store and self.durable and task_state_store is not None:  # first: it is what a retry reads
            task_state_store.set(self.external_id_key, job.to_dict())
        context["ti"].xcom_push(key=XCOM_KIE_TASK_ID, value=job.kie_task_id)

    def _checked_body(self) -> models.CheckedBody:
        """The createTask body from the rendered fields; file inputs stay as given until uploaded."""
        return models.checked_body(
            self.model,
            self.build_input(),
            self.callback_url,
            files=True,
            validate=self.validate,
            docs_url=self.docs_url,
        )

    def _validated_body(self) -> dict[str, Any]:
        return self._checked_body().body

    def _given_files(self) -> list[Any]:
        """The input files and URLs as the task was given them (before any upload)."""
        return models.file_inputs(self.model, self._validated_body()["input"])

    def _provenance(self) -> dict[str, Any]:
        """What the manifest of stored results says they were made from."""
        return {"input": self._body.get("input"), "sources": [str(ref) for ref in self._given_files()]}

    def _task_result(self, context: Any, task: KieTask) -> list[str]:
        self._finished = (task, [])  # a failed Kie task raises below, and lineage still tells which
        result = task_result(context, task, output=self._output, provenance=self._provenance())
        self._finished = (task, result)
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage for the OpenLineage provider: input images (as given: files or URLs), outputs (stored
        files, else Kie's result URLs) and a ``kie_task`` run facet (model, Kie task id, state, credits)."""
        from airflow_provider_kie import lineage

        try:
            given = self._given_files()
        except KieError:
            given = []
        task, outputs = self._finished or (None, [])
        return lineage.operator_lineage(task, given, outputs)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)

    def _defer(self, **mode: Any) -> None:
        # The triggerer copies the results too: a task that ends there needs no worker at all.
        store = None
        if self._output is not None:
            store = StoreRequest(str(self._output), self._provenance()).to_dict()
        # Imported when a task defers: a DAG file's parse needs no trigger (nor the engine behind it).
        from airflow_provider_kie.triggers.kie import KieTaskTrigger

        self.defer(
            trigger=KieTaskTrigger(
                kie_conn_id=self.kie_conn_id,
                poll_policy=self.poll_policy.to_dict(),
                end_from_trigger=may_end_in_triggerer(self),
                store=store,
                resume_not_before=resume_not_before(),
                **mode,
            ),
            method_name="execute_complete",
        )


def _own_overrides(cls: type) -> set[str]:
    """Names of the methods a user subclass redefines, beyond the provider's own classes."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("airflow_provider_kie."):
            break
        names.update(vars(klass))
    return names


def _holds(value: Any, test: Any) -> bool:
    if test(value):
        return True
    if isinstance(value, Mapping):
        return any(_holds(v, test) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds(v, test) for v in value)
    return False


def _is_xcom_arg(value: Any) -> bool:
    from airflow.providers.common.compat.sdk import XComArg

    return isinstance(value, XComArg)


def _is_file(value: Any) -> bool:
    return not (isinstance(value, str) and "{{" in value) and models.is_file_ref(value)
