"""The operator <-> trigger contract: the job reference and the one event a KieTaskTrigger yields.

Both travel as JSON (trigger kwargs, trigger events, XCom, the task state store), so each has one
typed definition here with ``to_dict`` and ``from_dict``; nothing else builds or reads those dicts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.exceptions import KieError, KieTimeoutError


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
    SUCCESS = "success"  # the Kie task succeeded; ``task`` holds it
    FAILED = "failed"  # the Kie task reached state fail; ``task`` holds failCode and failMsg
    TIMEOUT = "timeout"  # the deadline passed first
    ERROR = "error"  # waiting (or creating) ended on an error; ``error`` keeps its class and code
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
    def failed_with(cls, job: KieJobRef | None, error: BaseException) -> KieTaskEvent:
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
