"""Faults the emulator injects on demand, as one table: kind -> what it does.

A *reply* fault runs in place of (or around) the endpoint's handler, whatever the endpoint: Kie's
error codes, proxies' HTML pages, broken bodies, dropped connections, delays. A *record* fault alters
the task record that recordInfo sends (return None for "recordInfo is null").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from airflow_provider_kie.emulator.replies import MESSAGES, drop, envelope, record_of

if TYPE_CHECKING:
    from airflow_provider_kie.emulator.state import EmulatorState

Handle = Callable[[], Awaitable[web.StreamResponse]]
ReplyFault = Callable[[web.Request, "Fault", "EmulatorState", Handle], Awaitable[web.StreamResponse]]
RecordFault = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class BadSetting(ValueError):
    """An emulator setting or fault the emulator does not know (the control API answers 400)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")


@dataclass
class Fault:
    """One injected fault: ``kind`` (a key of FAULTS) on ``endpoint`` for the next ``times`` requests."""

    kind: str
    endpoint: str = "*"
    times: int | None = 1  # None: every request from now on
    delay: float = 0.0
    retry_after: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise BadSetting("kind", f"unknown fault {self.kind!r}; allowed: {', '.join(FAULTS)}")


@dataclass(frozen=True)
class FaultKind:
    description: str
    reply: ReplyFault | None = None
    record: RecordFault | None = None


# --------------------------------------------------------------------------- reply faults


def _body_code(code: int) -> ReplyFault:
    async def respond(
        request: web.Request, fault: Fault, state: EmulatorState, handle: Handle
    ) -> web.StreamResponse:
        record_of(request).status, record_of(request).code = 200, code
        return envelope(state, code, MESSAGES.get(code, f"error {code}"))

    return respond


def _http_code(code: int) -> ReplyFault:
    async def respond(
        request: web.Request, fault: Fault, state: EmulatorState, handle: Handle
    ) -> web.StreamResponse:
        record_of(request).status = record_of(request).code = code
        headers = {"Retry-After": f"{fault.retry_after:g}"} if code == 429 else None
        return envelope(state, code, MESSAGES[code], status=code, headers=headers)

    return respond


def _raw(status: int, body: str, content_type: str) -> ReplyFault:
    async def respond(
        request: web.Request, fault: Fault, state: EmulatorState, handle: Handle
    ) -> web.StreamResponse:
        record_of(request).status = status
        return web.Response(status=status, text=body, content_type=content_type)

    return respond


async def _truncated(
    request: web.Request, fault: Fault, state: EmulatorState, handle: Handle
) -> web.StreamResponse:
    """Announce the whole body, send half, close."""
    record_of(request).status = 200
    body = json.dumps({"code": 200, "msg": "success", "data": {"taskId": "x" * 32}}).encode()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    drop(request)
    return response


async def _send_half(request: web.Request, handle: Handle) -> tuple[web.StreamResponse, bytes]:
    """Handle the request, announce the whole reply, send its first half; return the rest to send."""
    reply = await handle()
    body = reply.body if isinstance(reply, web.Response) and isinstance(reply.body, bytes) else b""
    response = web.StreamResponse(status=reply.status, headers={"Content-Type": reply.content_type})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    return response, body[len(body) // 2 :]


async def _cut_body(
    request: web.Request, fault: Fault, state: EmulatorState, handle: Handle
) -> web.StreamResponse:
    """The real reply announced whole, half sent, then the connection reset."""
    response, _ = await _send_half(request, handle)
    drop(request)
    return response


async def _slow_body(
    request: web.Request, fault: Fault, state: EmulatorState, handle: Handle
) -> web.StreamResponse:
    """The real reply: half sent, the rest after ``delay`` seconds."""
    response, rest = await _send_half(request, handle)
    await asyncio.sleep(fault.delay)
    await response.write(rest)
    await response.write_eof()
    return response


async def _drop(
    request: web.Request, fault: Fault, state: EmulatorState, handle: Handle
) -> web.StreamResponse:
    drop(request)
    return web.Response(status=499)


async def _drop_after(
    request: web.Request, fault: Fault, state: EmulatorState, handle: Handle
) -> web.StreamResponse:
    response = await handle()  # the work is done (a task is created), the reply is lost
    drop(request)
    return response


async def _delay(
    request: web.Request, fault: Fault, state: EmulatorState, handle: Handle
) -> web.StreamResponse:
    await asyncio.sleep(fault.delay)
    return await handle()


# --------------------------------------------------------------------------- record faults


def _if_success(change: Callable[[dict[str, Any], str], None]) -> RecordFault:
    def alter(record: dict[str, Any]) -> dict[str, Any]:
        if record["state"] == "success":
            change(record, json.loads(record["resultJson"])["resultUrls"][0])
        return record

    return alter


def _unknown_state(record: dict[str, Any]) -> dict[str, Any]:
    if record["state"] not in ("success", "fail"):
        record["state"] = "rendering"
    return record


def _missing_fields(record: dict[str, Any]) -> dict[str, Any]:
    for name in ("param", "costTime", "updateTime", "progress", "failCode", "failMsg"):
        record.pop(name, None)
    return record


BODY_CODES = (400, 401, 402, 404, 408, 422, 429, 433, 455, 500, 501, 505)

FAULTS: dict[str, FaultKind] = {
    **{str(code): FaultKind(f"body code {code} on HTTP 200", reply=_body_code(code)) for code in BODY_CODES},
    "429-http": FaultKind("HTTP 429 with Retry-After and body code 429", reply=_http_code(429)),
    "500-http": FaultKind("HTTP 500 with body code 500", reply=_http_code(500)),
    "502-html": FaultKind(
        "HTTP 502 with an HTML page",
        reply=_raw(
            502,
            "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
            "text/html",
        ),
    ),
    "503-http": FaultKind("HTTP 503 with no body", reply=_raw(503, "", "text/plain")),
    "html-200": FaultKind(
        "HTTP 200 with an HTML page",
        reply=_raw(200, "<html><body>Just a moment...</body></html>", "text/html"),
    ),
    "empty": FaultKind("HTTP 200 with an empty body", reply=_raw(200, "", "application/json")),
    "truncated": FaultKind("HTTP 200 whose JSON body is cut in half", reply=_truncated),
    "cut-body": FaultKind(
        "the real reply announced whole, half sent, then the connection reset", reply=_cut_body
    ),
    "slow-body": FaultKind(
        "the real reply: half sent, then the rest after `delay` seconds", reply=_slow_body
    ),
    "drop": FaultKind("connection closed before the request is handled", reply=_drop),
    "drop-after": FaultKind(
        "request handled (a task is created), then the connection closed with no reply", reply=_drop_after
    ),
    "delay": FaultKind("reply after `delay` seconds", reply=_delay),
    "not-found": FaultKind("recordInfo answers 'recordInfo is null'", record=lambda record: None),
    "unknown-state": FaultKind("recordInfo reports a state Kie may add later", record=_unknown_state),
    "result-object": FaultKind(
        "resultJson sent as an object instead of a string",
        record=_if_success(lambda record, url: record.update(resultJson={"resultUrls": [url]})),
    ),
    "result-invalid": FaultKind(
        "resultJson that is not JSON",
        record=_if_success(lambda record, url: record.update(resultJson='{"resultUrls": ["' + url)),
    ),
    "result-no-urls": FaultKind(
        "resultJson without resultUrls",
        record=_if_success(lambda record, url: record.update(resultJson=json.dumps({"images": [url]}))),
    ),
    "missing-fields": FaultKind("recordInfo data without optional fields", record=_missing_fields),
}

REPLY_FAULTS = frozenset(kind for kind, entry in FAULTS.items() if entry.reply)
RECORD_FAULTS = frozenset(kind for kind, entry in FAULTS.items() if entry.record)
#: kind -> description, for users and docs.
FAULT_KINDS = {kind: entry.description for kind, entry in FAULTS.items()}
