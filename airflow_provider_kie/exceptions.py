"""Errors raised by the Kie provider, one class per failure a user must tell apart.

Each class says whether retrying the same request can help (``retryable``) and whether a
``createTask`` that raised it may still have created (and billed) a task (``may_have_created_task``).
The classes are plain exceptions with no Airflow import, so the contract layer and the emulator's
tests can use them anywhere.
"""

from __future__ import annotations

from typing import Any


class KieError(Exception):
    """Base class of every error the provider raises about Kie."""

    retryable: bool = False
    may_have_created_task: bool = False
    hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        operation: str | None = None,
        conn_id: str | None = None,
        task_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.http_status = http_status
        self.operation = operation
        self.conn_id = conn_id
        self.task_id = task_id
        self.retry_after = retry_after
        super().__init__(message)

    def __str__(self) -> str:
        parts = []
        if self.operation:
            parts.append(f"Kie {self.operation}")
        if self.conn_id:
            parts.append(f"(connection '{self.conn_id}')")
        if self.task_id:
            parts.append(f"task {self.task_id}")
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
            "task_id": self.task_id,
            "retryable": self.retryable,
        }

    @staticmethod
    def from_event(event: dict[str, Any], *, conn_id: str | None = None) -> KieError:
        """Rebuild the error described by :meth:`to_event` (unknown classes become ``KieError``)."""
        cls = _ERROR_CLASSES.get(str(event.get("error_class")), KieError)
        error = cls(
            str(event.get("message", "")),
            code=event.get("code"),
            http_status=event.get("http_status"),
            operation=event.get("operation"),
            task_id=event.get("task_id"),
            conn_id=conn_id,
        )
        error.retryable = bool(event.get("retryable", cls.retryable))
        return error


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
    """5xx from Kie or a proxy in front of it."""

    retryable = True


class KieFeatureDisabledError(KieError):
    """505: the feature is disabled on Kie's side."""


class KieConnectionError(KieError):
    """The request did not complete: refused, reset, timed out or dropped."""

    retryable = True

    def __init__(self, message: str, *, request_sent: bool = True, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # A refused connection never reached Kie; a reset or a read timeout may have.
        self.may_have_created_task = request_sent


class KieInputError(KieValidationError, ValueError):
    """Input rejected by the provider itself, before any request: names the parameter at fault."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"invalid {parameter!r}: {message}")
        self.parameter = parameter


class KieProtocolError(KieError):
    """Kie answered something that is not its JSON envelope (HTML page, truncated or empty body)."""

    retryable = True
    may_have_created_task = True


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


class KieTimeoutError(KieError):
    """The task did not reach a terminal state before the deadline."""


_ERROR_CLASSES: dict[str, type[KieError]] = {
    cls.__name__: cls
    for cls in (
        KieError,
        KieAuthError,
        KieInsufficientCreditsError,
        KieValidationError,
        KieNotFoundError,
        KieSubKeyLimitError,
        KieRateLimitError,
        KieMaintenanceError,
        KieServerError,
        KieFeatureDisabledError,
        KieConnectionError,
        KieProtocolError,
        KieAmbiguousCreateError,
        KieTaskFailedError,
        KieTimeoutError,
    )
}
