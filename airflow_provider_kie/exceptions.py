"""Errors raised by the Kie provider, one class per failure a user must tell apart.

Two flags belong to each class, never to an instance: ``retryable`` (can the same request succeed
if sent again?) and ``may_have_created_task`` (may a ``createTask`` that raised it still have created,
and billed, a task?). The classes are plain exceptions with no Airflow import, so the contract layer
and the emulator can use them anywhere. Every subclass is registered by name, so a trigger event can
carry an error across processes and the operator rebuilds the same class (:meth:`KieError.from_event`).
"""

from __future__ import annotations

from typing import Any, ClassVar

_REGISTRY: dict[str, type[KieError]] = {}


class KieError(Exception):
    """Base class of every error the provider raises about Kie."""

    retryable: ClassVar[bool] = False
    may_have_created_task: ClassVar[bool] = False
    hint: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        operation: str | None = None,
        conn_id: str | None = None,
        kie_task_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.http_status = http_status
        self.operation = operation
        self.conn_id = conn_id
        self.kie_task_id = kie_task_id
        self.retry_after = retry_after
        super().__init__(message)

    def __str__(self) -> str:
        parts = []
        if self.operation:
            parts.append(f"Kie {self.operation}")
        if self.conn_id:
            parts.append(f"(connection '{self.conn_id}')")
        if self.kie_task_id:
            parts.append(f"task {self.kie_task_id}")
        where = " ".join(parts)
        code = f" (code {self.code})" if self.code is not None else ""
        text = f"{where}: {self.message}{code}" if where else f"{self.message}{code}"
        return f"{text}. {self.hint}" if self.hint else text

    def to_event(self) -> dict[str, Any]:
        """JSON-safe description, so a trigger event keeps the class and code of the cause."""
        return {
            "error_class": type(self).__name__,
            "message": self.message,
            "code": self.code,
            "http_status": self.http_status,
            "operation": self.operation,
            "kie_task_id": self.kie_task_id,
        }

    @staticmethod
    def from_event(event: dict[str, Any], *, conn_id: str | None = None) -> KieError:
        """Rebuild the error described by :meth:`to_event` (unknown classes become ``KieError``)."""
        cls = _REGISTRY.get(str(event.get("error_class")), KieError)
        if issubclass(cls, KieInputError):
            cls = KieValidationError  # its parameter is already named in the message
        return cls(
            str(event.get("message", "")),
            code=event.get("code"),
            http_status=event.get("http_status"),
            operation=event.get("operation"),
            kie_task_id=event.get("kie_task_id"),
            conn_id=conn_id,
        )


class KieAuthError(KieError):
    """401: the API key is missing or invalid."""

    hint = "Set the connection's password to an API key from https://kie.ai/api-key"


class KieInsufficientCreditsError(KieError):
    """402: the account has not enough credits."""

    hint = "Top up the account at https://kie.ai/pricing"


class KieValidationError(KieError):
    """400/422 (and the 500 Kie answers to bad createTask parameters): the request is invalid."""


class KieNotFoundError(KieError):
    """404 "Task not found" or 422 "recordInfo is null": the task is unknown, or not visible yet."""


class KieSubKeyLimitError(KieError):
    """433: the sub-key used more than its usage cap."""

    hint = "Raise the key's limit at https://kie.ai/api-key or wait for it to reset"


class KieRateLimitError(KieError):
    """429: too many requests; Kie drops (does not queue) the request."""

    retryable = True


class KieMaintenanceError(KieError):
    """455: Kie is under maintenance."""

    retryable = True


class KieServerError(KieError):
    """5xx in Kie's own envelope: Kie answered, so a createTask created nothing."""

    retryable = True


class KieGatewayError(KieServerError):
    """500/502/504 from a proxy in front of Kie (no Kie envelope): the request may have reached Kie."""

    may_have_created_task = True


class KieFeatureDisabledError(KieError):
    """505: the feature is disabled on Kie's side."""


class KieConnectionError(KieError):
    """The request was sent but did not complete: reset, read time-out or dropped. Kie may have it."""

    retryable = True
    may_have_created_task = True


class KieNotSentError(KieConnectionError):
    """The connection was refused or timed out before the request left: Kie never saw it."""

    may_have_created_task = False


class KieInputError(KieValidationError, ValueError):
    """Input rejected by the provider itself, before any request: names the parameter at fault."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"invalid {parameter!r}: {message}")
        self.parameter = parameter


class KieProtocolError(KieError):
    """Kie answered something that is not its JSON envelope (HTML page, truncated or empty body)."""

    retryable = True
    may_have_created_task = True


class KieBadRecordError(KieProtocolError):
    """A task record Kie sent in its envelope but that cannot be read: the same record would come back."""

    retryable = False
    may_have_created_task = False


class KieAmbiguousCreateError(KieError):
    """A createTask may have reached Kie, but its reply was lost: it was not resent."""

    may_have_created_task = True
    hint = (
        "Look for the task in https://kie.ai/logs before running again, or pass "
        "retry_ambiguous_create=True to resend automatically (this may pay for two tasks)"
    )


class KieTaskFailedError(KieError):
    """The task reached state ``fail`` (``failCode`` / ``failMsg`` are in the message)."""

    def __init__(self, message: str, *, fail_code: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.fail_code = fail_code


class KieJobsFailedError(KieError):
    """Jobs of a task did not succeed, and a retry may fix some (it resumes the jobs already created)."""

    retryable = True


class KieTimeoutError(KieError):
    """The task did not reach a terminal state before the deadline."""


class KieStorageError(KieError):
    """A result could not be copied to ``output_path`` (download or write failed); a retry resumes the
    same Kie task and finishes the copy."""

    retryable = True


class KieSignatureError(KieError):
    """A callback whose signature is missing, stale or forged: answer it with 401 and ignore it."""


_REGISTRY[KieError.__name__] = KieError
