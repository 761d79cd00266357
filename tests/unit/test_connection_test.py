"""The middleware that lets the Connections list test a kie connection (docs/upstream/connection-test-port.md):
it drops only a kie test request's port 0, and passes everything else through untouched."""

from __future__ import annotations

import asyncio
import json

from airflow_provider_kie.plugins.connection_test import KieConnectionTestPort, without_zero_port


def test_only_a_kie_test_requests_port_zero_is_dropped():
    kie = {"connection_id": "k", "conn_type": "kie", "port": 0, "password": "***"}
    assert json.loads(without_zero_port(json.dumps(kie).encode())) == {
        k: v for k, v in kie.items() if k != "port"
    }
    for untouched in ({**kie, "conn_type": "http"}, {**kie, "port": 8443}, [1], "x"):
        body = json.dumps(untouched).encode()
        assert without_zero_port(body) == body
    assert without_zero_port(b"{not json") == b"{not json"


def run(path: str, method: str, body: bytes) -> tuple[bytes, dict]:
    seen = {}

    async def app(scope, receive, send):
        message = await receive()
        seen.update(body=message["body"], headers=dict(scope["headers"]))

    async def main():
        messages = [{"type": "http.request", "body": body[:5], "more_body": True},
                    {"type": "http.request", "body": body[5:], "more_body": False}]  # fmt: skip

        async def receive():
            return messages.pop(0)

        scope = {"type": "http", "method": method, "path": path, "headers": [(b"content-length", b"999")]}
        await KieConnectionTestPort(app)(scope, receive, None)

    asyncio.run(main())
    return seen["body"], seen["headers"]


def test_the_middleware_rewrites_the_test_request_and_its_length_and_nothing_else():
    body = json.dumps({"conn_type": "kie", "port": 0}).encode()
    fixed, headers = run("/api/v2/connections/test", "POST", body)
    assert (
        json.loads(fixed) == {"conn_type": "kie"} and headers[b"content-length"] == str(len(fixed)).encode()
    )
    other, headers = run("/api/v2/connections", "POST", body)  # saving a connection: first chunk, as sent
    assert (other, headers[b"content-length"]) == (body[:5], b"999")
