"""The Kie Market jobs API contract as pure code: paths, reply parsing, errors. No I/O, no models.

Every quirk of Kie (errors on HTTP 200 with the real code in the body, ``msg`` or ``message``,
JSON strings inside JSON, ``recordInfo is null`` right after creation) is handled here once, so the
hooks only move bytes and the emulator's tests check the same rules. What each model accepts is in
``models.py``.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any
from urllib.parse import urlparse

import pendulum

from airflow_provider_kie.exceptions import (
    KieAuthError,
    KieBadRecordError,
    KieError,
    KieFeatureDisabledError,
    KieGatewayError,
    KieInputError,
    KieInsufficientCreditsError,
    KieMaintenanceError,
    KieNotFoundError,
    KieProtocolError,
    KieRateLimitError,
    KieServerError,
    KieSubKeyLimitError,
    KieValidationError,
)

DEFAULT_BASE_URL = "https://api.kie.ai"
DEFAULT_UPLOAD_BASE_URL = "https://kieai.redpandaai.co"

CREATE_TASK_PATH = "/api/v1/jobs/createTask"
RECORD_INFO_PATH = "/api/v1/jobs/recordInfo"
CREDITS_PATH = "/api/v1/chat/credit"
DOWNLOAD_URL_PATH = "/api/v1/common/download-url"
UPLOAD_STREAM_PATH = "/api/file-stream-upload"
UPLOAD_URL_PATH = "/api/file-url-upload"
UPLOAD_BASE64_PATH = "/api/file-base64-upload"

# Operation names, used in error messages and to classify codes that mean different things per call.
CREATE_TASK = "createTask"
GET_TASK = "recordInfo"
GET_CREDITS = "credits"
GET_DOWNLOAD_URL = "download-url"
UPLOAD_FILE = "upload"

RECORD_INFO_IS_NULL = "recordInfo is null"


class TaskState(str, Enum):
    """State of a Kie task; values Kie may add later read as ``UNKNOWN`` (not terminal)."""

    WAITING = "waiting"
    QUEUING = "queuing"
    GENERATING = "generating"
    SUCCESS = "success"
    FAIL = "fail"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskState.SUCCESS, TaskState.FAIL)

    @classmethod
    def parse(cls, value: Any) -> TaskState:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True)
class KieTask:
    """One Kie task as read from recordInfo (or a callback)."""

    kie_task_id: str
    state: TaskState
    model: str | None = None
    result_urls: tuple[str, ...] = ()
    result: Mapping[str, Any] | None = None
    param: Mapping[str, Any] | None = None
    fail_code: str | None = None
    fail_msg: str | None = None
    credits_consumed: Decimal | None = None
    created_at: pendulum.DateTime | None = None
    updated_at: pendulum.DateTime | None = None
    completed_at: pendulum.DateTime | None = None
    raw_state: str | None = field(default=None, compare=False)

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    @property
    def result_object(self) -> Any:
        """What a model that answers with data rather than files returned (``resultObject``), or None."""
        return (self.result or {}).get("resultObject")

    @property
    def prompt(self) -> str | None:
        """The prompt the task was created with, from ``param`` (the rest of ``param`` is never kept: its
        ``callBackUrl`` may carry a token)."""
        given = (self.param or {}).get("input")
        prompt = given.get("prompt") if isinstance(given, Mapping) else None
        return prompt if isinstance(prompt, str) else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe record, fit for XCom and trigger events."""
        return {
            "kie_task_id": self.kie_task_id,
            "model": self.model,
            "state": self.state.value,
            "result_urls": list(self.result_urls),
            "fail_code": self.fail_code,
            "fail_msg": self.fail_msg,
            "credits_consumed": None if self.credits_consumed is None else float(self.credits_consumed),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "completed_at": _iso(self.completed_at),
            "prompt": self.prompt,
            **({"result_object": self.result_object} if self.result_object is not None else {}),
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> KieTask:
        """Inverse of :meth:`to_dict` (records of 0.1.0 named the id ``task_id``)."""
        credits = record.get("credits_consumed")
        return cls(
            kie_task_id=str(record.get("kie_task_id") or record["task_id"]),
            state=TaskState.parse(record.get("state")),
            model=record.get("model"),
            result_urls=tuple(record.get("result_urls") or ()),
            result={"resultObject": record["result_object"]}
            if record.get("result_object") is not None
            else None,
            fail_code=record.get("fail_code"),
            fail_msg=record.get("fail_msg"),
            credits_consumed=None if credits is None else Decimal(str(credits)),
            created_at=_parse_iso(record.get("created_at")),
            updated_at=_parse_iso(record.get("updated_at")),
            completed_at=_parse_iso(record.get("completed_at")),
            param={"input": {"prompt": record["prompt"]}} if record.get("prompt") else None,
        )


# --------------------------------------------------------------------------- requests


def validate_callback_url(url: Any) -> str:
    if not isinstance(url, str) or not is_http_url(url):
        raise KieInputError("callback_url", f"must be an absolute http(s) URL, got {url!r}")
    return url


def is_http_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


# --------------------------------------------------------------------------- replies


def parse_reply(body: Any, *, http_status: int, operation: str, retry_after: float | None = None) -> Any:
    """Check Kie's envelope ``{code, msg, data}`` and return ``data``, or raise the matching KieError.

    ``body`` is the raw reply (bytes or str) or an already decoded JSON value. Any non-2xx HTTP status
    or a body ``code`` other than 200 is an error, classified by the body code when there is one.
    """
    payload = _decode_json(body)
    if not isinstance(payload, Mapping) or "code" not in payload:
        if not 200 <= http_status < 300:
            raise classify_error(
                http_status,
                _snippet(body) or f"HTTP {http_status}",
                http_status=http_status,
                operation=operation,
                retry_after=retry_after,
                enveloped=False,
            )
        raise KieProtocolError(
            f"reply is not Kie's JSON envelope: {_snippet(body) or 'empty body'!r}",
            http_status=http_status,
            operation=operation,
        )
    message = str(payload.get("msg") or payload.get("message") or "")
    code = _as_int(payload.get("code"))
    if code is None:
        raise KieProtocolError(
            f"reply has no numeric code: {_snippet(body)!r}", http_status=http_status, operation=operation
        )
    if code != 200:
        raise classify_error(
            code,
            message,
            http_status=http_status,
            operation=operation,
            retry_after=retry_after,
            enveloped=True,
        )
    if not 200 <= http_status < 300:
        raise classify_error(
            http_status, message, http_status=http_status, operation=operation, retry_after=retry_after
        )
    return payload.get("data")


def classify_error(
    code: int,
    message: str,
    *,
    operation: str,
    http_status: int | None = None,
    retry_after: float | None = None,
    enveloped: bool = True,
) -> KieError:
    """Map a Kie code (or an HTTP status when the body has none) to its KieError class (docs/kie-api.md §4)."""
    kwargs: dict[str, Any] = {
        "code": code,
        "http_status": http_status,
        "operation": operation,
        "retry_after": retry_after,
    }
    message = message or f"error {code}"
    if code == 401:
        return KieAuthError(message, **kwargs)
    if code == 402:
        return KieInsufficientCreditsError(message, **kwargs)
    if code == 404 or (code == 422 and RECORD_INFO_IS_NULL.lower() in message.lower()):
        return KieNotFoundError(message, **kwargs)
    if code in (400, 422):
        return KieValidationError(message, **kwargs)
    if code == 429:
        return KieRateLimitError(message, **kwargs)
    if code == 433:
        return KieSubKeyLimitError(message, **kwargs)
    if code == 455:
        return KieMaintenanceError(message, **kwargs)
    if code == 505:
        return KieFeatureDisabledError(message, **kwargs)
    if code == 500 and enveloped and operation == CREATE_TASK:
        # Kie answers invalid createTask parameters with code 500 (docs/kie-api.md §4 ⚠): resending won't help.
        return KieValidationError(f"{message} (Kie uses code 500 for invalid parameters)", **kwargs)
    if code == 501:
        return KieError(f"generation failed: {message}", **kwargs)
    if code == 408 or 500 <= code < 600:
        # Kie itself answering with an error body created nothing; a gateway error may hide a created task.
        gateway = not enveloped and code in (500, 502, 504)
        return (KieGatewayError if gateway else KieServerError)(message, **kwargs)
    return KieError(message, **kwargs)


def parse_task_id(data: Any) -> str:
    """``data`` of a createTask reply -> the task id."""
    task_id = data.get("taskId") or data.get("recordId") if isinstance(data, Mapping) else None
    if not isinstance(task_id, str) or not task_id:
        raise KieProtocolError(f"createTask reply has no taskId: {data!r}", operation=CREATE_TASK)
    return task_id


def parse_task(data: Any) -> KieTask:
    """``data`` of a recordInfo reply (or of a callback) -> :class:`KieTask`."""
    if not isinstance(data, Mapping):
        raise KieProtocolError(f"recordInfo reply has no task record: {data!r}", operation=GET_TASK)
    task_id = data.get("taskId") or data.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise KieProtocolError(f"task record has no taskId: {_snippet(data)!r}", operation=GET_TASK)
    raw_state = data.get("state")
    state = TaskState.parse(raw_state)
    result = _decode_embedded_json(data.get("resultJson"), "resultJson", task_id)
    if result is not None and not isinstance(result, Mapping):
        raise _bad_record(task_id, f"resultJson is not an object: {_snippet(result)!r}")
    urls = _result_urls(result, task_id)
    if state is TaskState.SUCCESS and not urls and not (result and "resultObject" in result):
        raise _bad_record(task_id, f"succeeded but its resultJson has no resultUrls: {_snippet(result)!r}")
    credits = data.get("creditsConsumed", data.get("consumeCredits"))
    return KieTask(
        kie_task_id=task_id,
        state=state,
        model=data.get("model") if isinstance(data.get("model"), str) else None,
        result_urls=urls,
        result=result,
        param=_parse_param(data.get("param")),
        fail_code=_text_or_none(data.get("failCode")),
        fail_msg=_text_or_none(data.get("failMsg")),
        credits_consumed=_as_decimal(credits),
        created_at=_from_millis(data.get("createTime")),
        updated_at=_from_millis(data.get("updateTime")),
        completed_at=_from_millis(data.get("completeTime")),
        raw_state=None if raw_state is None else str(raw_state),
    )


def parse_credits(data: Any) -> Decimal:
    """``data`` of the credits reply -> balance (Kie reports decimals although its spec says integer)."""
    credits = _as_decimal(data)
    if credits is None:
        raise KieProtocolError(f"credits reply has no number: {data!r}", operation=GET_CREDITS)
    return credits


def parse_download_url(data: Any) -> str:
    url = data.get("url") or data.get("downloadUrl") if isinstance(data, Mapping) else data
    if not isinstance(url, str) or not is_http_url(url):
        raise KieProtocolError(f"download-url reply has no URL: {data!r}", operation=GET_DOWNLOAD_URL)
    return url


def parse_upload(data: Any) -> str:
    """``data`` of an upload reply -> its ``downloadUrl`` (the one field both documented shapes share)."""
    url = data.get("downloadUrl") or data.get("fileUrl") if isinstance(data, Mapping) else None
    if not isinstance(url, str) or not is_http_url(url):
        raise KieProtocolError(f"upload reply has no downloadUrl: {data!r}", operation=UPLOAD_FILE)
    return url


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# --------------------------------------------------------------------------- helpers


def _decode_json(body: Any) -> Any:
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return None
    return body


def _decode_embedded_json(value: Any, name: str, task_id: str) -> Any:
    """A JSON document Kie sends as a string; tolerate an object where a string was expected."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise _bad_record(task_id, f"{name} is not valid JSON: {_snippet(value)!r}")
    return value


# Frames some video models return beside their videos (Seedance 2 with ``return_last_frame``): results too.
FRAME_KEYS = ("firstFrameUrl", "lastFrameUrl")


def _result_urls(result: Mapping[str, Any] | None, task_id: str) -> tuple[str, ...]:
    urls = (result or {}).get("resultUrls") or ()
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, Sequence) or not all(isinstance(u, str) for u in urls):
        raise _bad_record(task_id, f"resultUrls is not a list of URLs: {_snippet(urls)!r}")
    frames = [(result or {}).get(key) for key in FRAME_KEYS]
    return (*urls, *(f for f in frames if isinstance(f, str) and f and f not in urls))


def _parse_param(value: Any) -> Mapping[str, Any] | None:
    try:
        param = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return None
    if not isinstance(param, Mapping):
        return None
    param = dict(param)
    if isinstance(param.get("input"), str):  # double-encoded input, seen in callbacks
        with contextlib.suppress(ValueError):
            param["input"] = json.loads(param["input"])
    return param


def _bad_record(task_id: str, message: str) -> KieBadRecordError:
    return KieBadRecordError(message, operation=GET_TASK, kie_task_id=task_id)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _as_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, str)):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        return result if result.is_finite() else None
    return None


def _text_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _from_millis(value: Any) -> pendulum.DateTime | None:
    millis = _as_decimal(value)
    if millis is None or millis <= 0:
        return None
    try:
        # not pendulum.from_timestamp: three per reply, and it costs half as much again
        return pendulum.DateTime.fromtimestamp(float(millis) / 1000, pendulum.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso(value: pendulum.DateTime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_iso(value: Any) -> pendulum.DateTime | None:
    if not value:
        return None
    parsed = pendulum.parse(str(value))
    return parsed if isinstance(parsed, pendulum.DateTime) else None


def _snippet(value: Any, limit: int = 200) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    text = value if isinstance(value, str) else repr(value)
    text = re.sub(r"<[^>]+>", " ", text)  # an HTML error page reads better without its tags
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")
