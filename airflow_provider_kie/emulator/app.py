"""The emulator's aiohttp application: Kie's routes, the control API, and one middleware that logs each
Kie request and injects the faults asked for."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from airflow_provider_kie.emulator import control, routes
from airflow_provider_kie.emulator.callbacks import CALLBACKS_KEY, cancel_callbacks
from airflow_provider_kie.emulator.faults import FAULTS, REPLY_FAULTS
from airflow_provider_kie.emulator.replies import RECORD_KEY
from airflow_provider_kie.emulator.state import EmulatorState, RequestRecord

# Kie's paths (docs/kie-api.md), the emulator's own copy: a wrong path in the client must fail the tests.
CREATE_TASK_PATH = "/api/v1/jobs/createTask"
RECORD_INFO_PATH = "/api/v1/jobs/recordInfo"
CREDITS_PATH = "/api/v1/chat/credit"
DOWNLOAD_URL_PATH = "/api/v1/common/download-url"
UPLOAD_STREAM_PATH = "/api/file-stream-upload"
UPLOAD_URL_PATH = "/api/file-url-upload"
UPLOAD_BASE64_PATH = "/api/file-base64-upload"

# Endpoint names used by faults and the request log.
ENDPOINTS = {
    CREATE_TASK_PATH: "createTask",
    RECORD_INFO_PATH: "recordInfo",
    CREDITS_PATH: "credit",
    DOWNLOAD_URL_PATH: "download-url",
    UPLOAD_STREAM_PATH: "upload",
    UPLOAD_URL_PATH: "upload",
    UPLOAD_BASE64_PATH: "upload",
}


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_make_middleware(state)])
    app[routes.STATE_KEY] = state
    app.router.add_post(CREATE_TASK_PATH, routes.create_task)
    app.router.add_get(RECORD_INFO_PATH, routes.record_info)
    app.router.add_get(CREDITS_PATH, routes.credits)
    app.router.add_post(DOWNLOAD_URL_PATH, routes.download_url)
    app.router.add_post(UPLOAD_STREAM_PATH, routes.upload_stream)
    app.router.add_post(UPLOAD_URL_PATH, routes.upload_url)
    app.router.add_post(UPLOAD_BASE64_PATH, routes.upload_base64)
    app.router.add_get("/files/{path:.+}", routes.serve_file)
    app.router.add_get("/llms.txt", routes.llms_txt)
    app.router.add_get(r"/{page:.+\.md}", routes.doc_page)
    app.router.add_get("/_emulator/requests", control.requests)
    app.router.add_get("/_emulator/tasks", control.tasks)
    app.router.add_post("/_emulator/tasks/{task_id}", control.task)
    app.router.add_get("/_emulator/callbacks", control.callbacks)
    app.router.add_get("/_emulator/config", control.config)
    app.router.add_post("/_emulator/config", control.config)
    app.router.add_post("/_emulator/faults", control.faults)
    app.router.add_post("/_emulator/reset", control.reset)
    app.router.add_get("/_emulator/pages", control.pages)
    app.router.add_post("/_emulator/pages", control.pages)
    app[CALLBACKS_KEY] = set()
    app.on_cleanup.append(cancel_callbacks)
    return app


def _make_middleware(state: EmulatorState) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        endpoint = ENDPOINTS.get(request.path)
        if endpoint is None and request.path.startswith("/files/"):
            # Kie's file hosts: no key and not logged, but their downloads can fail too.
            fault = state.take_fault("file", REPLY_FAULTS)
            if fault is None:
                return await handler(request)
            respond = FAULTS[fault.kind].reply
            assert respond is not None
            return await respond(request, fault, state, lambda: handler(request))
        if endpoint is None and (request.path == "/llms.txt" or request.path.endswith(".md")):
            endpoint = "docs"  # Kie's docs host: its own log (never a key there), its own faults
        if endpoint is None:  # control endpoints: no auth, no faults, not logged
            return await handler(request)
        record = RequestRecord(
            endpoint=endpoint,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            body=await routes.peek_json(request),
            key_sha256=routes.key_hash(request),
            user_agent=request.headers.get("User-Agent", ""),
        )
        with state.lock:
            (state.page_requests if endpoint == "docs" else state.requests).append(record)
            state.in_flight += 1
        request[RECORD_KEY] = record

        async def handle() -> web.StreamResponse:
            response = await handler(request)
            record.status = response.status
            return response

        try:
            if state.config.latency_seconds:
                await asyncio.sleep(state.config.latency_seconds)
            fault = state.take_fault(endpoint, REPLY_FAULTS)
            if fault is None:
                return await handle()
            respond = FAULTS[fault.kind].reply
            assert respond is not None
            return await respond(request, fault, state, handle)
        finally:
            with state.lock:
                state.in_flight -= 1

    return middleware
