"""A local Kie.ai API on aiohttp.web that honours kie-api.md, quirks included, with fault knobs.

Run it with ``python -m airflow_provider_kie.emulator`` or in-process with :class:`KieEmulator`.
Besides Kie's endpoints it serves ``/_emulator/*`` so tests in other processes can read its request
log, change its settings and inject faults.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import mimetypes
import random
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from aiohttp import ClientSession, ClientTimeout, web

from airflow_provider_kie import api
from airflow_provider_kie.callbacks import sign as callback_signature
from airflow_provider_kie.emulator.images import result_png
from airflow_provider_kie.exceptions import KieInputError

# Endpoint names used by faults and the request log.
ENDPOINTS = {
    api.CREATE_TASK_PATH: "createTask",
    api.RECORD_INFO_PATH: "recordInfo",
    api.CREDITS_PATH: "credit",
    api.DOWNLOAD_URL_PATH: "download-url",
    api.UPLOAD_STREAM_PATH: "upload",
    api.UPLOAD_URL_PATH: "upload",
    api.UPLOAD_BASE64_PATH: "upload",
}

_BODY_CODES = (400, 401, 402, 404, 408, 422, 429, 433, 455, 500, 501, 505)
FAULT_KINDS = {
    **{str(code): f"body code {code} on HTTP 200" for code in _BODY_CODES},
    "429-http": "HTTP 429 with Retry-After and body code 429",
    "500-http": "HTTP 500 with body code 500",
    "502-html": "HTTP 502 with an HTML page",
    "503-http": "HTTP 503 with no body",
    "html-200": "HTTP 200 with an HTML page",
    "empty": "HTTP 200 with an empty body",
    "truncated": "HTTP 200 whose JSON body is cut in half",
    "drop": "connection closed before the request is handled",
    "drop-after": "request handled (a task is created), then the connection closed with no reply",
    "delay": "reply after `delay` seconds",
    "not-found": "recordInfo answers 'recordInfo is null'",
    "unknown-state": "recordInfo reports a state Kie may add later",
    "result-object": "resultJson sent as an object instead of a string",
    "result-invalid": "resultJson that is not JSON",
    "result-no-urls": "resultJson without resultUrls",
    "missing-fields": "recordInfo data without optional fields",
}


@dataclass
class Fault:
    """One injected fault: ``kind`` (see FAULT_KINDS) on ``endpoint`` for the next ``times`` requests."""

    kind: str
    endpoint: str = "*"
    times: int | None = 1  # None: every request from now on
    delay: float = 0.0
    retry_after: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise KieInputError("kind", f"unknown fault {self.kind!r}; allowed: {', '.join(FAULT_KINDS)}")


@dataclass
class EmulatorConfig:
    """Knobs of the emulator; every field can be changed while it runs (``/_emulator/config``)."""

    api_keys: list[str] | None = None  # None: any non-empty key is accepted
    waiting_seconds: float = 0.3
    queuing_seconds: float = 0.0
    generating_seconds: float = 0.7
    null_seconds: float = 0.2  # recordInfo answers "recordInfo is null" this long after creation
    credits: Decimal = Decimal(1000)
    credits_per_task: Decimal = Decimal(6)
    fail_marker: str = "[fail]"  # prompts containing it end in state "fail"
    fail_rate: float = 0.0
    validation_error_code: int = 422  # Kie has also been seen answering 500
    message_key: str = "msg"  # or "message", as in older docs
    latency_seconds: float = 0.0
    rate_limits: bool = False  # Kie's own: 20 createTask per 10 s, 10 recordInfo per s, per key
    create_limit: tuple[int, float] = (20, 10.0)
    record_limit: tuple[int, float] = (10, 1.0)
    rate_limit_http_status: int = 200  # 429 to answer throttled requests with HTTP 429 too
    callback_secret: str | None = None  # Kie's webhookHmacKey: sign callbacks when set
    callback_attempts: int = 3

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in names:
                raise KieInputError(name, f"is not an emulator setting; settings: {', '.join(sorted(names))}")
            current = getattr(self, name)
            if isinstance(current, Decimal):
                value = Decimal(str(value))
            elif isinstance(current, tuple):
                value = tuple(value)
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass
class RequestRecord:
    endpoint: str
    method: str
    path: str
    query: dict[str, str]
    body: Any
    key_sha256: str | None  # which key was used, without keeping the key
    user_agent: str = ""
    status: int = 0
    code: int | None = None
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class EmulatedTask:
    task_id: str
    model: str
    body: dict[str, Any]
    key_sha256: str
    created: float
    waiting: float
    queuing: float
    generating: float
    fails: bool
    credits: Decimal
    forced_state: str | None = None  # set through /_emulator/tasks/{id}

    @property
    def done_at(self) -> float:
        return self.created + self.waiting + self.queuing + self.generating

    def state(self, now: float) -> str:
        if self.forced_state:
            return self.forced_state
        age = now - self.created
        if age < self.waiting:
            return "waiting"
        if age < self.waiting + self.queuing:
            return "queuing"
        if now < self.done_at:
            return "generating"
        return "fail" if self.fails else "success"


class EmulatorState:
    """Everything the emulator knows; guarded by a lock because tests read it from other threads."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.lock = threading.RLock()
        self.public_url = ""
        self.in_flight = 0  # Kie requests being handled now
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.tasks: dict[str, EmulatedTask] = {}
            self.requests: list[RequestRecord] = []
            self.faults: list[Fault] = []
            self.files: dict[str, tuple[bytes, str]] = {}
            self.callbacks: list[dict[str, Any]] = []
            self.windows: dict[tuple[str, str], deque[float]] = defaultdict(deque)
            self.spent = Decimal(0)

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, endpoint: str, kinds: set[str] | None = None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.endpoint not in ("*", endpoint) or (kinds is not None and fault.kind not in kinds):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def balance(self) -> Decimal:
        return Decimal(str(self.config.credits)) - self.spent

    def count(self, endpoint: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.endpoint == endpoint)

    def throttled(self, key: str, kind: str) -> bool:
        limit, window = self.config.create_limit if kind == "createTask" else self.config.record_limit
        now = time.monotonic()
        with self.lock:
            stamps = self.windows[(key, kind)]
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            if len(stamps) >= limit:
                return True
            stamps.append(now)
            return False


# Fault kinds that replace the reply before the request is handled, by endpoint-independent shape.
_EARLY_FAULTS = {*map(str, _BODY_CODES), "429-http", "500-http", "502-html", "503-http", "html-200",
                 "empty", "truncated", "drop", "delay", "drop-after"}  # fmt: skip
_RECORD_FAULTS = {
    "not-found",
    "unknown-state",
    "result-object",
    "result-invalid",
    "result-no-urls",
    "missing-fields",
}


STATE_KEY = web.AppKey("state", EmulatorState)
CALLBACKS_KEY = web.AppKey("callback_tasks", set)
RECORD_KEY: Any = web.RequestKey("record", RequestRecord) if hasattr(web, "RequestKey") else "record"


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_make_middleware(state)])
    app[STATE_KEY] = state
    app.router.add_post(api.CREATE_TASK_PATH, _create_task)
    app.router.add_get(api.RECORD_INFO_PATH, _record_info)
    app.router.add_get(api.CREDITS_PATH, _credits)
    app.router.add_post(api.DOWNLOAD_URL_PATH, _download_url)
    app.router.add_post(api.UPLOAD_STREAM_PATH, _upload_stream)
    app.router.add_post(api.UPLOAD_URL_PATH, _upload_url)
    app.router.add_post(api.UPLOAD_BASE64_PATH, _upload_base64)
    app.router.add_get("/files/{path:.+}", _serve_file)
    app.router.add_get("/_emulator/requests", _control_requests)
    app.router.add_get("/_emulator/tasks", _control_tasks)
    app.router.add_post("/_emulator/tasks/{task_id}", _control_task)
    app.router.add_get("/_emulator/callbacks", _control_callbacks)
    app.router.add_get("/_emulator/config", _control_config)
    app.router.add_post("/_emulator/config", _control_config)
    app.router.add_post("/_emulator/faults", _control_faults)
    app.router.add_post("/_emulator/reset", _control_reset)
    app[CALLBACKS_KEY] = set()
    app.on_cleanup.append(_cancel_callbacks)
    return app


def _make_middleware(state: EmulatorState) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        endpoint = ENDPOINTS.get(request.path)
        if endpoint is None:  # files and control endpoints: no auth, no faults, not logged
            return await handler(request)
        record = RequestRecord(
            endpoint=endpoint,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            body=await _peek_json(request),
            key_sha256=_key_hash(request),
            user_agent=request.headers.get("User-Agent", ""),
        )
        with state.lock:
            state.requests.append(record)
            state.in_flight += 1
        request[RECORD_KEY] = record
        try:
            return await _handle(request, handler, record, endpoint, state)
        finally:
            with state.lock:
                state.in_flight -= 1

    return middleware


async def _handle(
    request: web.Request, handler: Any, record: RequestRecord, endpoint: str, state: EmulatorState
) -> web.StreamResponse:
    if state.config.latency_seconds:
        await asyncio.sleep(state.config.latency_seconds)
    fault = state.take_fault(endpoint, _EARLY_FAULTS)
    if fault is not None and fault.kind == "delay":
        await asyncio.sleep(fault.delay)
        fault = None
    if fault is not None and fault.kind != "drop-after":
        return await _faulty_reply(request, fault, record, state)
    response = await handler(request)
    record.status = response.status
    if fault is not None:  # drop-after: the work is done, the reply is lost
        _drop(request)
    return response


async def _faulty_reply(
    request: web.Request, fault: Fault, record: RequestRecord, state: EmulatorState
) -> web.StreamResponse:
    kind = fault.kind
    record.status = 200
    if kind == "drop":
        _drop(request)
        return web.Response(status=499)
    if kind.isdigit():
        record.code = int(kind)
        return _envelope(state, int(kind), _FAULT_MESSAGES.get(int(kind), f"error {kind}"))
    if kind in ("429-http", "500-http"):
        code = int(kind[:3])
        record.status = record.code = code
        headers = {"Retry-After": f"{fault.retry_after:g}"} if code == 429 else None
        return _envelope(state, code, _FAULT_MESSAGES[code], status=code, headers=headers)
    if kind == "502-html":
        record.status = 502
        html = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
        return web.Response(status=502, text=html, content_type="text/html")
    if kind == "503-http":
        record.status = 503
        return web.Response(status=503)
    if kind == "html-200":
        return web.Response(text="<html><body>Just a moment...</body></html>", content_type="text/html")
    if kind == "empty":
        return web.Response(body=b"", content_type="application/json")
    # truncated: announce the whole body, send half, close
    body = json.dumps({"code": 200, "msg": "success", "data": {"taskId": "x" * 32}}).encode()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    _drop(request)
    return response


_FAULT_MESSAGES = {
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


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _envelope(
    state: EmulatorState, code: int, message: str, data: Any = None, *, status: int = 200, headers: Any = None
) -> web.Response:
    body = {"code": code, state.config.message_key: message, "data": data}
    return web.json_response(body, status=status, headers=headers)


async def _peek_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        return None
    try:
        return await request.json()
    except ValueError:
        return None


def _key_hash(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        return None
    return hashlib.sha256(header[7:].strip().encode()).hexdigest()


def _auth_error(request: web.Request, state: EmulatorState) -> web.Response | None:
    key_hash = request[RECORD_KEY].key_sha256
    allowed = state.config.api_keys
    if key_hash is None or (
        allowed is not None and key_hash not in {hashlib.sha256(k.encode()).hexdigest() for k in allowed}
    ):
        request[RECORD_KEY].code = 401
        return _envelope(state, 401, _FAULT_MESSAGES[401])
    return None


def _throttle(request: web.Request, state: EmulatorState, kind: str) -> web.Response | None:
    if not state.config.rate_limits or not state.throttled(request[RECORD_KEY].key_sha256, kind):
        return None
    request[RECORD_KEY].code = 429
    status = state.config.rate_limit_http_status
    request[RECORD_KEY].status = status
    headers = {"Retry-After": "1"} if status == 429 else None
    return _envelope(state, 429, _FAULT_MESSAGES[429], status=status, headers=headers)


def _reply(
    request: web.Request, state: EmulatorState, code: int, message: str, data: Any = None
) -> web.Response:
    request[RECORD_KEY].code = code
    return _envelope(state, code, message, data)


async def _create_task(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if (error := _auth_error(request, state) or _throttle(request, state, "createTask")) is not None:
        return error
    body = request[RECORD_KEY].body
    if not isinstance(body, dict):
        return _reply(
            request, state, state.config.validation_error_code, "request body must be a JSON object"
        )
    model, task_input, callback = body.get("model"), body.get("input"), body.get("callBackUrl")
    try:
        if not isinstance(model, str) or not model:
            raise KieInputError("model", "is required")
        if not isinstance(task_input, dict):
            raise KieInputError("input", "is required and must be an object")
        api.create_task_body(model, task_input, callback)
    except KieInputError as error:
        return _reply(request, state, state.config.validation_error_code, str(error))
    config = state.config
    with state.lock:
        if state.balance() < Decimal(str(config.credits_per_task)):
            return _reply(request, state, 402, _FAULT_MESSAGES[402])
        task_id = uuid.uuid4().hex
        prompt = str(task_input.get("prompt", ""))
        task = EmulatedTask(
            task_id=task_id,
            model=model,
            body=body,
            key_sha256=request[RECORD_KEY].key_sha256,
            created=time.time(),
            waiting=config.waiting_seconds,
            queuing=config.queuing_seconds,
            generating=config.generating_seconds,
            fails=config.fail_marker in prompt or random.random() < config.fail_rate,
            credits=Decimal(str(config.credits_per_task)),
        )
        state.tasks[task_id] = task
        if not task.fails:
            state.spent += task.credits
    if callback:
        _schedule_callback(request.app, state, task)
    return _reply(request, state, 200, "success", {"taskId": task_id, "recordId": task_id})


def task_record(
    state: EmulatorState, task: EmulatedTask, now: float, fault: str | None = None
) -> dict[str, Any]:
    """recordInfo ``data`` for ``task`` at time ``now``, shaped as Kie sends it."""
    current = task.state(now)
    if fault == "unknown-state" and current not in ("success", "fail"):
        current = "rendering"
    terminal = current in ("success", "fail")
    url = f"{state.public_url}/files/results/{task.task_id}.png"
    result_json: Any = ""
    if current == "success":
        result_json = json.dumps({"resultUrls": [url]})
        if fault == "result-object":
            result_json = {"resultUrls": [url]}
        elif fault == "result-invalid":
            result_json = '{"resultUrls": ["' + url
        elif fault == "result-no-urls":
            result_json = json.dumps({"images": [url]})
    finished = min(now, task.done_at)
    record: dict[str, Any] = {
        "taskId": task.task_id,
        "model": task.model,
        "state": current,
        "param": json.dumps(task.body),
        "resultJson": result_json,
        "failCode": "500" if current == "fail" else "",
        "failMsg": "internal error, please try again later" if current == "fail" else "",
        "costTime": round(task.done_at - task.created) if terminal else 0,
        "createTime": int(task.created * 1000),
        "updateTime": int(finished * 1000),
        "progress": 100 if terminal else 0,
    }
    if terminal:
        record["completeTime"] = int(task.done_at * 1000)
        record["creditsConsumed"] = float(task.credits) if current == "success" else 0
    if fault == "missing-fields":
        for name in ("param", "costTime", "updateTime", "progress", "failCode", "failMsg"):
            record.pop(name, None)
    return record


async def _record_info(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if (error := _auth_error(request, state) or _throttle(request, state, "recordInfo")) is not None:
        return error
    task_id = request.query.get("taskId", "").strip()
    if not task_id:
        return _reply(request, state, 400, "taskId parameter is required")
    now = time.time()
    with state.lock:
        task = state.tasks.get(task_id)
    fault = state.take_fault("recordInfo", _RECORD_FAULTS)
    kind = fault.kind if fault else None
    if task is None or kind == "not-found" or now - task.created < state.config.null_seconds:
        return _reply(request, state, 422, api.RECORD_INFO_IS_NULL)
    return _reply(request, state, 200, "success", task_record(state, task, now, kind))


async def _credits(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if (error := _auth_error(request, state)) is not None:
        return error
    balance = state.balance()
    value: int | float = int(balance) if balance == balance.to_integral_value() else float(balance)
    return _reply(request, state, 200, "success", value)


async def _download_url(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if (error := _auth_error(request, state)) is not None:
        return error
    body = request[RECORD_KEY].body
    url = body.get("url") if isinstance(body, dict) else None
    if not url:
        return _reply(request, state, 422, "url is required")
    if not url.startswith(f"{state.public_url}/files/"):
        return _reply(request, state, 422, "external URL not supported")
    return _reply(request, state, 200, "success", f"{url}?token={uuid.uuid4().hex}")


def _upload_reply(
    request: web.Request, state: EmulatorState, code: int, message: str, data: Any = None
) -> web.Response:
    request[RECORD_KEY].code = code
    return web.json_response({"success": code == 200, "code": code, "msg": message, "data": data})


def _store_upload(
    request: web.Request, state: EmulatorState, content: bytes, upload_path: Any, file_name: Any
) -> web.Response:
    if not isinstance(upload_path, str) or not upload_path.strip("/"):
        return _upload_reply(request, state, 400, "Missing required parameter: uploadPath")
    name = file_name if isinstance(file_name, str) and file_name else f"{uuid.uuid4().hex}"
    path = f"uploads/{upload_path.strip('/')}/{name}"
    mime = _sniff_mime(content) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    with state.lock:
        state.files[path] = (content, mime)
    return _upload_reply(
        request,
        state,
        200,
        "File uploaded successfully",
        {
            "fileName": name,
            "filePath": path,
            "downloadUrl": f"{state.public_url}/files/{path}",
            "fileSize": len(content),
            "mimeType": mime,
            "uploadedAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        },
    )


def _sniff_mime(content: bytes) -> str | None:
    if content.startswith(b"\x89PNG"):
        return "image/png"
    if content.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


async def _upload_stream(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if _auth_error(request, state):
        return _upload_reply(request, state, 401, _FAULT_MESSAGES[401])
    if not request.content_type.startswith("multipart/"):
        return _upload_reply(request, state, 400, "multipart/form-data is required")
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        return _upload_reply(request, state, 400, "Missing required parameter: file")
    request[RECORD_KEY].body = {"uploadPath": form.get("uploadPath"), "fileName": form.get("fileName")}
    content = upload.file.read()
    return _store_upload(
        request, state, content, form.get("uploadPath"), form.get("fileName") or upload.filename
    )


async def _upload_url(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if _auth_error(request, state):
        return _upload_reply(request, state, 401, _FAULT_MESSAGES[401])
    body = request[RECORD_KEY].body or {}
    url = body.get("fileUrl")
    if not isinstance(url, str) or urlparse(url).scheme not in ("http", "https"):
        return _upload_reply(request, state, 400, "Missing required parameter: fileUrl")
    content = _local_file(state, url)
    if content is None:
        host = urlparse(url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            # Offline by design: stand in for the remote file with a generated image.
            content = result_png(url)
        else:
            async with (
                ClientSession(timeout=ClientTimeout(total=30)) as session,
                session.get(url) as response,
            ):
                if response.status != 200:
                    return _upload_reply(
                        request, state, 400, f"could not download fileUrl: HTTP {response.status}"
                    )
                content = await response.read()
    return _store_upload(request, state, content, body.get("uploadPath"), body.get("fileName"))


async def _upload_base64(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if _auth_error(request, state):
        return _upload_reply(request, state, 401, _FAULT_MESSAGES[401])
    body = request[RECORD_KEY].body or {}
    data = body.get("base64Data")
    if not isinstance(data, str) or not data:
        return _upload_reply(request, state, 400, "Missing required parameter: base64Data")
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return _upload_reply(request, state, 400, "base64Data is not valid base64")
    request[RECORD_KEY].body = {**body, "base64Data": f"<{len(content)} bytes>"}
    return _store_upload(request, state, content, body.get("uploadPath"), body.get("fileName"))


def _local_file(state: EmulatorState, url: str) -> bytes | None:
    prefix = f"{state.public_url}/files/"
    if not url.startswith(prefix):
        return None
    found = _find_file(state, url[len(prefix) :].split("?")[0])
    return found[0] if found else None


def _find_file(state: EmulatorState, path: str) -> tuple[bytes, str] | None:
    if path.startswith("results/") and path.endswith(".png"):
        task_id = path[len("results/") : -len(".png")]
        with state.lock:
            task = state.tasks.get(task_id)
        if task is not None and task.state(time.time()) == "success":
            return result_png(task_id), "image/png"
        return None
    with state.lock:
        return state.files.get(path)


async def _serve_file(request: web.Request) -> web.Response:
    found = _find_file(request.app[STATE_KEY], request.match_info["path"])
    if found is None:
        raise web.HTTPNotFound()
    content, mime = found
    return web.Response(body=content, content_type=mime, headers={"Cache-Control": "max-age=86400"})


# --------------------------------------------------------------------------- callbacks


def _schedule_callback(app: web.Application, state: EmulatorState, task: EmulatedTask) -> None:
    job = asyncio.ensure_future(_deliver_callback(state, task))
    app[CALLBACKS_KEY].add(job)
    job.add_done_callback(app[CALLBACKS_KEY].discard)


async def _deliver_callback(state: EmulatorState, task: EmulatedTask) -> None:
    await asyncio.sleep(max(0.0, task.done_at - time.time()))
    now = time.time()
    data = task_record(state, task, now)
    success = data["state"] == "success"
    payload = {
        "code": 200 if success else 501,
        "msg": "Playground task completed successfully." if success else "Playground task failed.",
        "data": data,
    }
    headers = {"Content-Type": "application/json"}
    if state.config.callback_secret:
        timestamp = str(int(now))
        headers["X-Webhook-Timestamp"] = timestamp
        headers["X-Webhook-Signature"] = callback_signature(
            state.config.callback_secret, task.task_id, timestamp
        )
    delivery: dict[str, Any] = {"task_id": task.task_id, "url": task.body["callBackUrl"], "attempts": 0}
    with state.lock:
        state.callbacks.append(delivery)
    async with ClientSession(timeout=ClientTimeout(total=15)) as session:
        for attempt in range(1, state.config.callback_attempts + 1):
            delivery["attempts"] = attempt
            try:
                async with session.post(
                    delivery["url"], data=json.dumps(payload), headers=headers
                ) as response:
                    delivery["status"] = response.status
                    if response.status == 200:
                        delivery["delivered"] = True
                        return
            except Exception as error:  # a failed delivery is recorded, never raised: Kie does the same
                delivery["error"] = type(error).__name__
            await asyncio.sleep(min(2.0**attempt, 10.0) / 10)
    delivery["delivered"] = False


async def _cancel_callbacks(app: web.Application) -> None:
    jobs: set[Any] = app[CALLBACKS_KEY]
    for job in list(jobs):
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await job


# --------------------------------------------------------------------------- control API


async def _control_requests(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    with state.lock:
        return web.json_response([r.to_dict() for r in state.requests])


async def _control_tasks(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    now = time.time()
    with state.lock:
        tasks = list(state.tasks.values())
    return web.json_response([task_record(state, t, now) for t in tasks])


async def _control_task(request: web.Request) -> web.Response:
    """Force a task's state, e.g. ``{"state": "success"}`` to end it now."""
    state: EmulatorState = request.app[STATE_KEY]
    body = await request.json()
    with state.lock:
        task = state.tasks.get(request.match_info["task_id"])
        if task is None:
            raise web.HTTPNotFound()
        task.forced_state = body.get("state")
    return web.json_response(task_record(state, task, time.time()))


async def _control_callbacks(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    with state.lock:
        return web.json_response(list(state.callbacks))


async def _control_config(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if request.method == "POST":
        try:
            with state.lock:
                state.config.update(await request.json())
        except KieInputError as error:
            return web.json_response({"error": str(error)}, status=400)
    return web.json_response(state.config.to_dict())


async def _control_faults(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    try:
        state.add_fault(Fault(**await request.json()))
    except (KieInputError, TypeError) as error:
        return web.json_response({"error": str(error)}, status=400)
    return web.json_response({"faults": len(state.faults)})


async def _control_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"reset": True})
