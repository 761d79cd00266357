"""The emulator's replies and the hook's requests against Kie's own OpenAPI documents, vendored in
airflow_provider_kie/emulator/openapi/ (a missing document fails these tests; none is skipped)."""

from __future__ import annotations

import json
import time

import pytest
import requests
from openapi_schema_validator import OAS31Validator

from airflow_provider_kie import api, models
from airflow_provider_kie.emulator import schema
from airflow_provider_kie.testing import EMULATOR_API_KEY
from tests.support import EDIT_INPUT


def request_schema(name: str, path: str) -> dict:
    return schema.request_schema(name, path)


def response_schema(name: str, path: str, method: str, status: str = "200") -> dict:
    return schema.response_schema(name, path, method, status)


def ERROR_ENVELOPE() -> dict:
    """Kie's error shape ``{code, msg, data: null}``, as its recordInfo 422 reply documents it.

    (The ApiResponse schemas call ``data`` an object, yet every documented error example sends null.)
    """
    return response_schema("market-get-task-detail.openapi.yaml", api.RECORD_INFO_PATH, "get", "422")


def validate(instance, schema):
    OAS31Validator(schema).validate(instance)


@pytest.fixture
def session(kie_emulator):
    kie_emulator.config.null_seconds = 0.0
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {EMULATOR_API_KEY}"
        yield s


def create(session, url, model=models.SEEDREAM_EDIT_MODEL, task_input=EDIT_INPUT, **extra):
    reply = session.post(f"{url}{api.CREATE_TASK_PATH}", json={"model": model, "input": task_input, **extra})
    return reply.json()


def record(session, url, task_id):
    return session.get(f"{url}{api.RECORD_INFO_PATH}", params={"taskId": task_id}).json()


@pytest.mark.parametrize(
    ("document", "model", "task_input"),
    [
        ("seedream-4-5-edit.openapi.yaml", models.SEEDREAM_EDIT_MODEL, EDIT_INPUT),
        (
            "seedream-4-5-text-to-image.openapi.yaml",
            models.SEEDREAM_TEXT_TO_IMAGE_MODEL,
            {"prompt": "a lighthouse", "aspect_ratio": "16:9", "quality": "high"},
        ),
    ],
)
def test_create_request_and_reply(hook, kie_emulator, session, document, model, task_input):
    hook.create_task(model, task_input, callback_url="https://example.org/kie/callback")
    (sent,) = [r.body for r in kie_emulator.requests if r.endpoint == "createTask"]
    validate(sent, request_schema(document, api.CREATE_TASK_PATH))
    validate(
        create(session, kie_emulator.url, model, task_input),
        response_schema(document, api.CREATE_TASK_PATH, "post"),
    )


def test_create_validation_error_reply(kie_emulator, session):
    reply = create(session, kie_emulator.url, task_input={**EDIT_INPUT, "quality": "ultra"})
    assert reply["code"] == 422 and "quality" in reply["msg"]
    validate(reply, ERROR_ENVELOPE())


@pytest.mark.parametrize("prompt", [EDIT_INPUT["prompt"], "[fail] please fail"])
def test_record_info_terminal_replies(kie_emulator, session, prompt):
    kie_emulator.config.update({"waiting_seconds": 0, "generating_seconds": 0.05})
    task_id = create(session, kie_emulator.url, task_input={**EDIT_INPUT, "prompt": prompt})["data"]["taskId"]
    time.sleep(0.1)
    reply = record(session, kie_emulator.url, task_id)
    assert reply["data"]["state"] in ("success", "fail")
    validate(reply, response_schema("market-get-task-detail.openapi.yaml", api.RECORD_INFO_PATH, "get"))


def test_record_info_pending_reply(kie_emulator, session):
    kie_emulator.config.waiting_seconds = 30
    task_id = create(session, kie_emulator.url)["data"]["taskId"]
    reply = record(session, kie_emulator.url, task_id)
    assert reply["data"]["state"] == "waiting"
    schema = response_schema("market-get-task-detail.openapi.yaml", api.RECORD_INFO_PATH, "get")
    validate(reply, schema)
    assert "completeTime" not in reply["data"]


@pytest.mark.parametrize(
    ("task_id", "code"), [("", 400), ("f" * 32, 422)], ids=["missing-id", "record-info-is-null"]
)
def test_record_info_errors(kie_emulator, session, task_id, code):
    reply = record(session, kie_emulator.url, task_id)
    validate(reply, ERROR_ENVELOPE())
    assert reply["code"] == code


def test_credits_reply(kie_emulator, session):
    reply = session.get(f"{kie_emulator.url}{api.CREDITS_PATH}").json()
    validate(reply, response_schema("common-get-account-credits.openapi.yaml", api.CREDITS_PATH, "get"))


def test_download_url_reply(kie_emulator, session):
    kie_emulator.config.update({"waiting_seconds": 0, "generating_seconds": 0})
    task_id = create(session, kie_emulator.url)["data"]["taskId"]
    url = record(session, kie_emulator.url, task_id)["data"]["resultJson"]
    result_url = json.loads(url)["resultUrls"][0]
    reply = session.post(f"{kie_emulator.url}{api.DOWNLOAD_URL_PATH}", json={"url": result_url}).json()
    validate(reply, response_schema("common-download-url.openapi.yaml", api.DOWNLOAD_URL_PATH, "post"))


@pytest.mark.parametrize(
    ("document", "path", "kwargs"),
    [
        ("file-upload-stream.openapi.yaml", api.UPLOAD_STREAM_PATH, {"files": {"file": ("a.png", b"\x89PNG")}, "data": {"uploadPath": "t"}}),
        ("file-upload-url.openapi.yaml", api.UPLOAD_URL_PATH, {"json": {"fileUrl": "https://example.org/a.png", "uploadPath": "t"}}),
        ("file-upload-base64.openapi.yaml", api.UPLOAD_BASE64_PATH, {"json": {"base64Data": "iVBORw0K", "uploadPath": "t"}}),
    ],
)  # fmt: skip
def test_upload_replies(kie_emulator, session, document, path, kwargs):
    reply = session.post(f"{kie_emulator.url}{path}", **kwargs).json()
    validate(reply, response_schema(document, path, "post"))
