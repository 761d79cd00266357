"""Kie's endpoints as the emulator serves them: createTask, recordInfo, credits, download-url, the three
uploads and the files they host (results and uploads). Every quirk of docs/kie-api.md is mimicked."""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import random
import time
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from aiohttp import ClientSession, ClientTimeout, web

from airflow_provider_kie import media
from airflow_provider_kie.emulator import catalog
from airflow_provider_kie.emulator.callbacks import schedule_callback
from airflow_provider_kie.emulator.faults import FAULTS, RECORD_FAULTS
from airflow_provider_kie.emulator.images import result_file, result_png
from airflow_provider_kie.emulator.replies import MESSAGES, envelope, record_of, reply
from airflow_provider_kie.emulator.schema import create_task_problem
from airflow_provider_kie.emulator.state import EmulatedTask, EmulatorState, task_record

STATE_KEY = web.AppKey("state", EmulatorState)
RECORD_INFO_IS_NULL = "recordInfo is null"


async def peek_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        return None
    try:
        return await request.json()
    except ValueError:
        return None


def key_hash(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        return None
    return hashlib.sha256(header[7:].strip().encode()).hexdigest()


def _auth_error(request: web.Request, state: EmulatorState) -> web.Response | None:
    key_hash = record_of(request).key_sha256
    allowed = state.config.api_keys
    if key_hash is None or (
        allowed is not None and key_hash not in {hashlib.sha256(k.encode()).hexdigest() for k in allowed}
    ):
        record_of(request).code = 401
        return envelope(state, 401, MESSAGES[401])
    return None


def _throttle(request: web.Request, state: EmulatorState, kind: str) -> web.Response | None:
    if not state.config.rate_limits or not state.throttled(record_of(request).key_sha256 or "", kind):
        return None
    record_of(request).code = 429
    status = state.config.rate_limit_http_status
    record_of(request).status = status
    headers = {"Retry-After": "1"} if status == 429 else None
    return envelope(state, 429, MESSAGES[429], status=status, headers=headers)


async def create_task(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if (error := _auth_error(request, state) or _throttle(request, state, "createTask")) is not None:
        return error
    body = record_of(request).body
    problem = create_task_problem(state, body)
    if problem is not None:
        return reply(request, state, state.config.validation_error_code, problem)
    model, task_input, callback = body["model"], body["input"], body.get("callBackUrl")
    kind = catalog.kind(state, model)
    config = state.config
    with state.lock:
        if state.balance() < Decimal(str(config.credits_per_task)):
            return reply(request, state, 402, MESSAGES[402])
        task_id = uuid.uuid4().hex
        prompt = str(task_input.get("prompt", ""))
        task = EmulatedTask(
            task_id=task_id,
            model=model,
            body=body,
            key_sha256=record_of(request).key_sha256 or "",
            created=time.time(),
            waiting=config.waiting_seconds,
            queuing=config.queuing_seconds,
            generating=config.generating_seconds * config.generating_factors.get(kind, 1.0)
            + random.uniform(0.0, config.generating_spread_seconds),
            fails=config.fail_marker in prompt or random.random() < config.fail_rate,
            credits=Decimal(str(config.credits_per_task)),
            kind=kind,
            result_shape=catalog.result_shape(state, model),
        )
        state.tasks[task_id] = task
        if not task.fails:
            state.spent += task.credits
    if callback:
        schedule_callback(request.app, state, task)
    return reply(request, state, 200, "success", {"taskId": task_id, "recordId": task_id})


async def record_info(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if (error := _auth_error(request, state) or _throttle(request, state, "recordInfo")) is not None:
        return error
    task_id = request.query.get("taskId", "").strip()
    if not task_id:
        return reply(request, state, 400, "taskId parameter is required")
    now = time.time()
    with state.lock:
        task = state.tasks.get(task_id)
    fault = state.take_fault("recordInfo", RECORD_FAULTS)
    record = None
    if task is not None and now - task.created >= state.config.null_seconds:
        record = task_record(state, task, now)
        alter = FAULTS[fault.kind].record if fault else None
        record = alter(record) if alter else record
    if record is None:
        return reply(request, state, 422, RECORD_INFO_IS_NULL)
    return reply(request, state, 200, "success", record)


async def credits(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if (error := _auth_error(request, state)) is not None:
        return error
    balance = state.balance()
    value: int | float = int(balance) if balance == balance.to_integral_value() else float(balance)
    return reply(request, state, 200, "success", value)


async def download_url(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if (error := _auth_error(request, state)) is not None:
        return error
    body = record_of(request).body
    url = body.get("url") if isinstance(body, dict) else None
    if not url:
        return reply(request, state, 422, "url is required")
    if not url.startswith(f"{state.public_url}/files/"):
        return reply(request, state, 422, "external URL not supported")
    return reply(request, state, 200, "success", f"{url}?token={uuid.uuid4().hex}")


def _upload_reply(
    request: web.Request, state: EmulatorState, code: int, message: str, data: Any = None
) -> web.Response:
    record_of(request).code = code
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
    # Kie sniffs an upload's type itself. Kept apart from the client's inputs.sniff on purpose: the
    # emulator must not share the code it checks.
    if content.startswith(b"\x89PNG"):
        return "image/png"
    if content.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


async def upload_stream(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if _auth_error(request, state):
        return _upload_reply(request, state, 401, MESSAGES[401])
    if not request.content_type.startswith("multipart/"):
        return _upload_reply(request, state, 400, "multipart/form-data is required")
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        return _upload_reply(request, state, 400, "Missing required parameter: file")
    record_of(request).body = {"uploadPath": form.get("uploadPath"), "fileName": form.get("fileName")}
    content = upload.file.read()
    return _store_upload(
        request, state, content, form.get("uploadPath"), form.get("fileName") or upload.filename
    )


async def upload_url(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if _auth_error(request, state):
        return _upload_reply(request, state, 401, MESSAGES[401])
    body = record_of(request).body or {}
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


async def upload_base64(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    if _auth_error(request, state):
        return _upload_reply(request, state, 401, MESSAGES[401])
    body = record_of(request).body or {}
    data = body.get("base64Data")
    if not isinstance(data, str) or not data:
        return _upload_reply(request, state, 400, "Missing required parameter: base64Data")
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return _upload_reply(request, state, 400, "base64Data is not valid base64")
    record_of(request).body = {**body, "base64Data": f"<{len(content)} bytes>"}
    return _store_upload(request, state, content, body.get("uploadPath"), body.get("fileName"))


def _local_file(state: EmulatorState, url: str) -> bytes | None:
    prefix = f"{state.public_url}/files/"
    if not url.startswith(prefix):
        return None
    found = _find_file(state, url[len(prefix) :].split("?")[0])
    return found[0] if found else None


def _find_file(state: EmulatorState, path: str) -> tuple[bytes, str] | None:
    if path.startswith("results/"):
        name, _, extension = path[len("results/") :].partition(".")
        task_id, frame = name.removesuffix("-first").removesuffix("-last"), name.endswith(("-first", "-last"))
        with state.lock:
            task = state.tasks.get(task_id)
        kind = "image" if frame else task.kind if task else ""
        if task is None or task.state(time.time()) != "success" or media.made_as(kind)[1] != extension:
            return None
        return result_file(kind, name, state.config.result_bytes)
    with state.lock:
        return state.files.get(path)


async def llms_txt(request: web.Request) -> web.Response:
    """Kie's docs index (another host at Kie; here beside the API, with no key asked)."""
    state: EmulatorState = request.app[STATE_KEY]
    return web.Response(text=catalog.llms_txt(state, state.public_url), content_type="text/plain")


async def doc_page(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE_KEY]
    text = catalog.page(state, request.path)
    if text is None:
        raise web.HTTPNotFound()
    return web.Response(text=text, content_type="text/markdown")


async def serve_file(request: web.Request) -> web.Response:
    found = _find_file(request.app[STATE_KEY], request.match_info["path"])
    if found is None:
        raise web.HTTPNotFound()
    content, mime = found
    return web.Response(body=content, content_type=mime, headers={"Cache-Control": "max-age=86400"})
