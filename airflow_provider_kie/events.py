"""The typed seams: what travels as JSON between the operators, the triggers, XCom and the task state
store. A Kie job (one create, one wait, its results) is the unit: a task runs N >= 1 of them. Each type
has one definition here with ``to_dict`` and ``from_dict``; nothing else builds or reads those dicts
(the ledger's record excepted: :mod:`~airflow_provider_kie.ledger` keeps it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.exceptions import KieError, KieInputError, KieTimeoutError

# What a task with jobs that did not succeed does: fail the Airflow task once all ended, or report them.
ON_ITEM_FAILURE = ("fail", "report")


@dataclass(frozen=True)
class JobRef:
    """A Kie task a job created, and the absolute deadline (epoch seconds) of the wait for it."""

    kie_task_id: str
    deadline: float

    @classmethod
    def starting_now(cls, kie_task_id: str, timeout: float) -> JobRef:
        return cls(kie_task_id, time.time() + timeout)

    def to_dict(self) -> dict[str, Any]:
        return {"kie_task_id": self.kie_task_id, "deadline": self.deadline}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobRef:
        # 0.1.0 kept {"task_id", "deadline"} in the task state store: a retry after an upgrade finds it.
        kie_task_id, deadline = data.get("kie_task_id") or data.get("task_id"), data.get("deadline")
        if not kie_task_id or deadline is None:
            raise ValueError(f"a Kie job reference needs kie_task_id and deadline, got {dict(data)!r}")
        return cls(str(kie_task_id), float(deadline))


@dataclass(frozen=True)
class Provenance:
    """What a job's results were made from, as its manifest says: the input sent to Kie (uploaded files
    as their URLs) and the files or URLs the task was given."""

    input: Mapping[str, Any] | None = None
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "sources": list(self.sources)}


@dataclass(frozen=True)
class Job:
    """One Kie job to run: its family's create body (validated, its files uploaded), the files or URLs it
    was given, and the values it sends unconfirmed (see :attr:`~airflow_provider_kie.models.CheckedInput.unconfirmed`).
    A job with no body only waits for a Kie task created elsewhere (a sensor's)."""

    body: dict[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    unconfirmed: tuple[str, ...] = ()
    family: str = "market"

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.body.get("input"), self.sources)

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"body": self.body}
        for name in ("sources", "unconfirmed"):
            if getattr(self, name):
                data[name] = list(getattr(self, name))
        if self.family != "market":
            data["family"] = self.family
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            dict(data.get("body") or {}),
            tuple(data.get("sources") or ()),
            tuple(data.get("unconfirmed") or ()),
            str(data.get("family") or "market"),
        )


class Status(str, Enum):
    """How a job ended: the one outcome vocabulary of events, XCom, the gallery and lineage. Kie's own
    states are :class:`~airflow_provider_kie.api.TaskState`; ``SUCCESS`` and ``FAILED`` (Kie's ``fail``)
    come from them, the others are the provider's."""

    SUCCESS = "success"
    FAILED = "failed"  # Kie failed the task: failCode and failMsg say why
    TIMEOUT = "timeout"  # the deadline passed first
    ERROR = "error"  # creating or waiting raised; ``error`` keeps its class and code
    CREATED = "created"  # created, not waited for (``wait_for_completion=False``)


def credits_of(task: KieTask | None) -> float | None:
    """A task's credits as the provider reports them (Kie sends decimals)."""
    return None if task is None or task.credits_consumed is None else float(task.credits_consumed)


@dataclass(frozen=True)
class JobOutcome:
    """How one job ended, as XCom, events, asset extras, lineage, the gallery and the receiver read it:
    the Kie task's record (the 0.1.0 ``kie_task`` keys: ``kie_task_id``, ``model``, ``state``,
    ``result_urls``, ``fail_code``, ``fail_msg``, ``credits_consumed``, the times, ``prompt``), what the
    job made (``result``: the stored URIs, else Kie's URLs), and why it did not succeed."""

    index: int
    status: Status
    kie_task_id: str | None = None
    deadline: float | None = None
    model: str | None = None
    state: str | None = None
    result: tuple[str, ...] = ()
    kie_urls: tuple[str, ...] = ()
    result_object: Any = None
    fail_code: str | None = None
    fail_msg: str | None = None
    credits_consumed: float | None = None
    times: tuple[str | None, str | None, str | None] = (None, None, None)  # created, updated, completed
    prompt: str | None = None
    error: Mapping[str, Any] | None = None  # KieError.to_event(), for ERROR and TIMEOUT
    stored: bool = False

    @classmethod
    def finished(
        cls, index: int, job: JobRef, task: KieTask, stored: Sequence[str] | None = None
    ) -> JobOutcome:
        record = task.to_dict()
        success = task.state is TaskState.SUCCESS
        return cls(
            index,
            Status.SUCCESS if success else Status.FAILED,
            job.kie_task_id,
            job.deadline,
            task.model,
            task.state.value,
            tuple(stored if stored is not None else task.result_urls) if success else (),
            task.result_urls,
            task.result_object,
            task.fail_code,
            task.fail_msg,
            credits_of(task),
            (record["created_at"], record["updated_at"], record["completed_at"]),
            task.prompt,
            stored=stored is not None,
        )

    @classmethod
    def errored(
        cls, index: int, job: JobRef | None, error: BaseException, model: str | None = None
    ) -> JobOutcome:
        """Creating or waiting raised ``error`` (not Kie failing the task: that is FAILED)."""
        if not isinstance(error, KieError):  # keep the cause rather than a bare traceback
            error = KieError(f"{type(error).__name__}: {error}")
        if error.kie_task_id is None and job is not None:
            error.kie_task_id = job.kie_task_id
        status = Status.TIMEOUT if isinstance(error, KieTimeoutError) else Status.ERROR
        return cls(
            index,
            status,
            None if job is None else job.kie_task_id,
            None if job is None else job.deadline,
            model,
            error=error.to_event(),
        )

    @classmethod
    def created(cls, index: int, job: JobRef, model: str | None) -> JobOutcome:
        return cls(index, Status.CREATED, job.kie_task_id, job.deadline, model)

    @property
    def succeeded(self) -> bool:
        return self.status is Status.SUCCESS

    @property
    def job(self) -> JobRef | None:
        if self.kie_task_id is None or self.deadline is None:
            return None
        return JobRef(self.kie_task_id, self.deadline)

    def as_error(self, *, conn_id: str | None = None) -> KieError:
        """The error this outcome reports (FAILED, TIMEOUT, ERROR)."""
        if self.status is Status.FAILED:
            from airflow_provider_kie.exceptions import KieTaskFailedError

            return KieTaskFailedError(
                f"the task failed with failCode {self.fail_code!r}: {self.fail_msg or 'no failMsg'}",
                kie_task_id=self.kie_task_id,
                fail_code=self.fail_code,
                operation="task",
            )
        if self.status is Status.TIMEOUT:
            return KieTimeoutError(self.message or "timed out", kie_task_id=self.kie_task_id)
        return KieError.from_event(dict(self.error or {"message": "error"}), conn_id=conn_id)

    @property
    def message(self) -> str | None:
        """Why the job did not succeed, in a line."""
        if self.status is Status.FAILED:
            return f"failCode {self.fail_code}: {self.fail_msg or 'no failMsg'}"
        if self.error is not None:
            return str(KieError.from_event(dict(self.error)))
        return None

    @property
    def retryable(self) -> bool:
        """Whether a retry of the Airflow task may fix it (a retry pays anew for what Kie failed)."""
        if self.status is Status.FAILED:
            return True
        return self.status is Status.ERROR and KieError.from_event(dict(self.error or {})).retryable

    def to_dict(self) -> dict[str, Any]:
        created, updated, completed = self.times
        data: dict[str, Any] = {
            "index": self.index,
            "status": self.status.value,
            "kie_task_id": self.kie_task_id,
            "deadline": self.deadline,
            "model": self.model,
            "state": self.state,
            "result": list(self.result),
            "result_urls": list(self.kie_urls),
            "fail_code": self.fail_code,
            "fail_msg": self.fail_msg,
            "credits_consumed": self.credits_consumed,
            "created_at": created,
            "updated_at": updated,
            "completed_at": completed,
            "prompt": self.prompt,
            "stored": self.stored,
            "error": self.message,
            "retryable": self.retryable,
        }
        if self.error is not None:
            data["cause"] = dict(self.error)
        if self.result_object is not None:
            data["result_object"] = self.result_object
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobOutcome:
        credits = data.get("credits_consumed")
        status = Status(data.get("status") or "error")
        error = data.get("cause") or (
            {"message": data["error"]} if data.get("error") and status is not Status.FAILED else None
        )
        return cls(
            int(data.get("index") or 0),
            status,
            data.get("kie_task_id") or data.get("task_id"),
            None if data.get("deadline") is None else float(data["deadline"]),
            data.get("model"),
            data.get("state"),
            tuple(data.get("result") or ()),
            tuple(data.get("result_urls") or ()),
            data.get("result_object"),
            data.get("fail_code"),
            data.get("fail_msg"),
            None if credits is None else float(credits),
            (data.get("created_at"), data.get("updated_at"), data.get("completed_at")),
            data.get("prompt"),
            error,
            bool(data.get("stored")),
        )


def check_policy(on_item_failure: Any) -> None:
    if on_item_failure not in ON_ITEM_FAILURE:
        raise KieInputError(
            "on_item_failure",
            f"must be one of {', '.join(map(repr, ON_ITEM_FAILURE))}, got {on_item_failure!r}",
        )


@dataclass
class JobRecord:
    """What a task's jobs sent: the Kie task of each created job, and the jobs whose createTask left with
    no task id kept (such a job may exist at Kie: its create is ambiguous). Kept as it happens by the
    :class:`~airflow_provider_kie.ledger.Ledger`, which alone reads and writes where it is stored."""

    jobs: dict[int, JobRef] = field(default_factory=dict)
    sent: set[int] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobs": {str(index): job.to_dict() for index, job in sorted(self.jobs.items())},
            "sent": sorted(self.sent),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> JobRecord:
        data = data or {}
        jobs = {int(index): JobRef.from_dict(job) for index, job in (data.get("jobs") or {}).items()}
        return cls(jobs, {int(index) for index in data.get("sent") or ()})

    def merged(self, other: JobRecord) -> JobRecord:
        jobs = {**self.jobs, **other.jobs}
        return JobRecord(jobs, (self.sent | other.sent) - set(jobs))

    def for_retry(self, outcomes: Sequence[JobOutcome]) -> JobRecord:
        """What a retry of the Airflow task starts from: every job's Kie task but those Kie failed (a
        retry pays for those anew, which is what retrying a failed generation means)."""
        failed = {o.index for o in outcomes if o.status is Status.FAILED}
        return JobRecord(
            {index: job for index, job in self.jobs.items() if index not in failed}, self.sent - failed
        )


@dataclass(frozen=True)
class JobsEvent:
    """The one event a trigger of jobs yields: every job's outcome, in order, and the record a retry
    resumes from; or, from a task started in the triggerer, why it must continue on a worker."""

    outcomes: list[JobOutcome] = field(default_factory=list)
    record: JobRecord = field(default_factory=JobRecord)
    needs_worker: str | None = None

    @property
    def failed(self) -> list[JobOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.succeeded]

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcomes": [outcome.to_dict() for outcome in self.outcomes],
            "record": self.record.to_dict(),
            "needs_worker": self.needs_worker,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobsEvent:
        return cls(
            [JobOutcome.from_dict(o) for o in data.get("outcomes") or ()],
            JobRecord.from_dict(data.get("record")),
            data.get("needs_worker"),
        )
