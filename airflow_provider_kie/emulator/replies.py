"""How the emulator answers: Kie's envelope, its usual messages, and a dropped connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from airflow_provider_kie.emulator.state import EmulatorState, RequestRecord

# The request log entry of the request being handled (aiohttp >= 3.11 has typed request keys).
RECORD_KEY: Any = web.RequestKey("record", object) if hasattr(web, "RequestKey") else "record"

MESSAGES = {
    401: "You do not have access permissions",
    402: "Credits insufficient",
    404: "Task not found",
    408: "Upstream returned no result for over 10 minutes",
    422: "Validation error",
    429: "Rate limit exceeded",
    433: "Sub-key usage exceeds limit",
    455: "Service unavailable: system maintenance",
    500: "Server Error - An unexpected error occurred while processing the request",
    501: "Generation failed",
    505: "Feature disabled",
}


def record_of(request: web.Request) -> RequestRecord:
    return request[RECORD_KEY]


def envelope(
    state: EmulatorState, code: int, message: str, data: Any = None, *, status: int = 200, headers: Any = None
) -> web.Response:
    """Kie's ``{code, msg, data}`` (``message`` instead of ``msg`` when configured, as older docs show)."""
    body = {"code": code, state.config.message_key: message, "data": data}
    return web.json_response(body, status=status, headers=headers)


def reply(
    request: web.Request, state: EmulatorState, code: int, message: str, data: Any = None
) -> web.Response:
    """The envelope on HTTP 200, its code noted in the request log."""
    record_of(request).code = code
    return envelope(state, code, message, data)


def drop(request: web.Request) -> None:
    """Close the connection with no (further) reply."""
    transport = request.transport
    if transport is not None:
        transport.abort()
