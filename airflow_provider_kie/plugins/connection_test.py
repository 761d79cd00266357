"""The Test button of a saved ``kie`` connection on Airflow 3.3's Connections list.

The UI posts ``"port": 0`` for a connection stored without a port; the API then takes the endpoint for
changed and refuses to test with the stored (masked) key: 400 "The host or port to test differs from
the stored connection" (docs/upstream/connection-test-port.md reproduces it for the Airflow project).
A ``kie`` connection has no port, so this API-server middleware drops that ``0`` from such a test
request and leaves every other request untouched.
"""

from __future__ import annotations

import json
from typing import Any

TEST_PATH = "/api/v2/connections/test"


def without_zero_port(body: bytes) -> bytes:
    """``body`` without ``"port": 0`` when it tests a ``kie`` connection; otherwise ``body`` as it is."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    if not (isinstance(payload, dict) and payload.get("conn_type") == "kie" and payload.get("port") == 0):
        return body
    del payload["port"]
    return json.dumps(payload).encode()


class KieConnectionTestPort:
    """Pure ASGI, so every other request passes through it at the cost of one comparison."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith(TEST_PATH):
            await self.app(scope, receive, send)
            return
        chunks, message = [], {"more_body": True}
        while message.get("more_body"):
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
        body = without_zero_port(b"".join(chunks))
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        request = {"type": "http.request", "body": body, "more_body": False}
        await self.app({**scope, "headers": headers}, _replay([request], receive), send)


def _replay(messages: list[dict[str, Any]], receive: Any) -> Any:
    async def replayed() -> Any:
        return messages.pop(0) if messages else await receive()

    return replayed
