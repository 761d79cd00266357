"""The typed seams: the job reference, the one event a KieTaskTrigger yields, and a batch's record, item
outcomes and event.

Each travels as JSON (trigger kwargs, trigger events, XCom, the task state store), so each has one
typed definition here with ``to_dict`` and ``from_dict``; nothing else builds or reads those dicts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.exceptions import KieError, KieInputError, KieTimeoutError

# What a batch does when items did not succeed: fail the Airflow task once all ended, or report them.
ON_ITEM_FAILURE = ("fail", "report")


@dataclass(frozen=True)
class KieJobRef:
    """The Kie task an Airflow task waits for, and the absolute deadline (epoch seconds) of the wait.

    It is stored before waiting starts (XCom ``kie_task_id``, the task state store) so that a restarted
    trigger or a retried task finds the same Kie task instead of paying for another.
    """

    kie_task_id: str
    deadline: float

    @classmethod
    def starting_now(cls, kie_task_id: str, timeout: float) -> KieJobRef:
        return cls(kie_task_id, time.time() + timeout)

    def to_dict(self) -> dict[str, Any]:
        return {"kie_task_id": self.kie_task_id, "deadline": self.deadline}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KieJobRef:
        # Version 0.1.0 stored {"task_id", "deadline"}: a retry after an upgrade must still find it.
        kie_task_id, deadline = data.get("kie_task_id") or data.get("task_id"), data.get("deadline")
        if not kie_task_id or deadline is None:
            raise ValueError(f"a Kie job reference needs kie_task_id and deadline, got {dict(data)!r}")
        return cls(str(kie_task_id), float(deadline))


@dataclass(frozen=True)
class CreateRequest:
    """What a trigger needs to create the Kie task itself: the validated createTask body, the time the
    wait may take once the task exists, and whether a createTask whose reply was lost may be resent."""

    body: dict[str, Any]
    timeout: float
    retry_ambiguous_create: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "body": self.body,
            "timeout": self.timeout,
            "retry_ambiguous_create": self.retry_ambiguous_create,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CreateRequest:
        return cls(dict(data["body"]), float(data["timeout"]), bool(data.get("retry_ambiguous_create")))


@dataclass(frozen=True)
class StoreRequest:
    """Where the trigger copies a succeeded task's results (``output_path``, as a URI that keeps its
    connection id) and their provenance for the manifest (see :func:`~airflow_provider_kie.storage.persist`)."""

    output_path: str
    provenance: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"output_path": self.output_path, "provenance": self.provenance}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoreRequest:
        return cls(str(data["output_path"]), data.get("provenance"))


class EventStatus(str, Enum):
    """How the wait for a Kie task ended: the one outcome vocabulary of events, ``return_value``
    entries, the gallery and lineage. Kie's own states are :class:`~airflow_provider_kie.api.TaskState`
    (``waiting`` ... ``success`` / ``fail``); only two outcomes come from them, ``SUCCESS`` and
    ``FAILED`` (Kie's ``fail``), through :meth:`KieTaskEvent.finished`; the others are the provider's."""

    SUCCESS = "success"  # the Kie task succeeded; ``task`` holds it
    FAILED = "failed"  # Kie failed the task (state ``fail``); ``task`` holds failCode and failMsg
    TIMEOUT = "timeout"  # the deadline passed first
    ERROR = "error"  # creating or waiting raised (KieTaskEvent.errored); ``error`` keeps its class and code
    NEEDS_WORKER = (
        "needs_worker"  # a task started in the triggerer that only a worker can run; ``message`` says why
    )


@dataclass(frozen=True)
class KieTaskEvent:
    """The one event of a KieTaskTrigger. ``job`` is set once the Kie task exists; ``stored`` once the
    trigger copied the results to ``output_path``."""

    status: EventStatus
    job: KieJobRef | None = None
    task: KieTask | None = None
    error: dict[str, Any] | None = None
    message: str = ""
    stored: list[str] | None = None

    @classmethod
    def finished(cls, job: KieJobRef, task: KieTask, stored: list[str] | None = None) -> KieTaskEvent:
        status = EventStatus.SUCCESS if task.state is TaskState.SUCCESS else EventStatus.FAILED
        return cls(status, job, task=task, stored=stored)

    @classmethod
    def errored(cls, job: KieJobRef | None, error: BaseException) -> KieTaskEvent:
        """Creating or waiting raised ``error`` (not Kie failing the task: that is FAILED)."""
        if not isinstance(error, KieError):  # keep the cause rather than a bare triggerer traceback
            error = KieError(f"{type(error).__name__}: {error}")
        if error.kie_task_id is None and job is not None:
            error.kie_task_id = job.kie_task_id
        return cls(EventStatus.ERROR, job, error=error.to_event(), message=str(error))

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            **(self.job.to_dict() if self.job else {"kie_task_id": None, "deadline": None}),
            "task": self.task.to_dict() if self.task else None,
            "error": self.error,
            "message": self.message,
            "stored": self.stored,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KieTaskEvent:
        job = (
            KieJobRef.from_dict(data)
            if data.get("deadline") is not None and (data.get("kie_task_id") or data.get("task_id"))
            else None
        )
        try:
            status = EventStatus(data.get("status"))
        except ValueError:
            status = EventStatus.ERROR
        return cls(
            status,
            job,
            task=KieTask.from_dict(data["task"]) if data.get("task") else None,
            error=data.get("error") or (None if status is not EventStatus.ERROR else {"message": repr(data)}),
            message=str(data.get("message") or ""),
            stored=list(data["stored"]) if data.get("stored") is not None else None,
        )

    def as_error(self, *, conn_id: str | None = None) -> KieError:
        """The error this event reports (for TIMEOUT and ERROR)."""
        if self.status is EventStatus.TIMEOUT:
            return KieTimeoutError(
                self.message or "timed out", kie_task_id=self.job.kie_task_id if self.job else None
            )
        return KieError.from_event(self.error or {"message": self.message}, conn_id=conn_id)


@dataclass
class BatchRecord:
    """What a batch sent: the Kie task of each created item, and the items whose createTask left with no
    task id kept (an earlier run's; such an item may exist at Kie: its create is ambiguous)."""

    jobs: dict[int, KieJobRef] = field(default_factory=dict)
    sent: set[int] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobs": {str(index): job.to_dict() for index, job in sorted(self.jobs.items())},
            "sent": sorted(self.sent),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> BatchRecord:
        data = data or {}
        jobs = {int(index): KieJobRef.from_dict(job) for index, job in (data.get("jobs") or {}).items()}
        return cls(jobs, {int(index) for index in data.get("sent") or ()})

    def merged(self, other: BatchRecord) -> BatchRecord:
        jobs = {**self.jobs, **other.jobs}
        return BatchRecord(jobs, (self.sent | other.sent) - set(jobs))

    def for_retry(self, outcomes: list[ItemOutcome]) -> BatchRecord:
        """What a retry of the Airflow task starts from: every item's Kie task but those Kie failed (a
        retry pays for those anew, which is what retrying a failed generation means)."""
        failed = {o.index for o in outcomes if o.status is EventStatus.FAILED}
        return BatchRecord(
            {index: job for index, job in self.jobs.items() if index not in failed}, self.sent - failed
        )


@dataclass(frozen=True)
class ItemOutcome:
    """One item of a batch, as its entry in the batch's ``return_value``: its index and status, its Kie
    task, what it made (stored URIs, else Kie's URLs) and the credits it cost, or why it failed and
    whether a retry of the Airflow task can fix it."""

    index: int
    status: EventStatus
    kie_task_id: str | None = None
    result: tuple[str, ...] = ()
    credits_consumed: float | None = None
    error: str | None = None
    retryable: bool = False

    @classmethod
    def of(cls, index: int, event: KieTaskEvent) -> ItemOutcome:
        task = event.task
        error, retryable = None, False
        if event.status is EventStatus.FAILED and task is not None:
            error, retryable = f"failCode {task.fail_code!r}: {task.fail_msg or 'no failMsg'}", True
        elif event.status is EventStatus.TIMEOUT:
            error = event.message or "timed out"
        elif event.status is EventStatus.ERROR:
            error = event.message or "error"
            retryable = KieError.from_event(event.error or {}).retryable
        result: tuple[str, ...] = ()
        if event.status is EventStatus.SUCCESS and task is not None:
            result = tuple(event.stored if event.stored is not None else task.result_urls)
        credits = None if task is None or task.credits_consumed is None else float(task.credits_consumed)
        job_id = event.job.kie_task_id if event.job else None
        return cls(index, event.status, job_id, result, credits, error, retryable)

    @property
    def succeeded(self) -> bool:
        return self.status is EventStatus.SUCCESS

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "status": self.status.value,
            "kie_task_id": self.kie_task_id,
            "result": list(self.result),
            "credits_consumed": self.credits_consumed,
            "error": self.error,
            "retryable": self.retryable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemOutcome:
        credits = data.get("credits_consumed")
        return cls(
            int(data["index"]),
            EventStatus(data["status"]),
            data.get("kie_task_id"),
            tuple(data.get("result") or ()),
            None if credits is None else float(credits),
            data.get("error"),
            bool(data.get("retryable")),
        )


@dataclass(frozen=True)
class BatchEvent:
    """The one event of a batch trigger: every item's outcome, in the items' order, and the record a
    retry resumes from."""

    outcomes: list[ItemOutcome]
    record: BatchRecord

    @property
    def failed(self) -> list[ItemOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.succeeded]

    def return_value(self) -> list[dict[str, Any]]:
        """The batch task's ``return_value``: one entry per item, in order."""
        return [outcome.to_dict() for outcome in self.outcomes]

    def to_dict(self) -> dict[str, Any]:
        return {"results": self.return_value(), "record": self.record.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchEvent:
        return cls(
            [ItemOutcome.from_dict(item) for item in data.get("results") or ()],
            BatchRecord.from_dict(data.get("record")),
        )


def check_policy(on_item_failure: Any) -> None:
    if on_item_failure not in ON_ITEM_FAILURE:
        raise KieInputError(
            "on_item_failure",
            f"must be one of {', '.join(map(repr, ON_ITEM_FAILURE))}, got {on_item_failure!r}",
        )
