"""The emulator's own promises: rate limits, callbacks with Kie's HMAC, control API, CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
import requests

from airflow_provider_kie import api, models
from airflow_provider_kie.api import TaskState
from airflow_provider_kie.callbacks import sign as callback_signature
from airflow_provider_kie.exceptions import KieRateLimitError, KieValidationError
from airflow_provider_kie.hooks.kie import KieHook, RetryPolicy
from airflow_provider_kie.testing import EMULATOR_API_KEY, free_port
from tests.support import EDIT_INPUT

NO_RETRY = RetryPolicy(max_attempts=1, rate_limited_budget=0)


def test_kie_rate_limits_per_key(kie_emulator, monkeypatch):
    kie_emulator.config.update({"rate_limits": True, "null_seconds": 0})
    # The client's own limiter off, to see the server's.
    monkeypatch.setenv(
        "AIRFLOW_CONN_KIE_DEFAULT", kie_emulator.connection_uri(EMULATOR_API_KEY, client_rate_limits=False)
    )
    hook = KieHook(retry_policy=NO_RETRY)
    task_ids = [hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT) for _ in range(20)]
    with pytest.raises(KieRateLimitError):
        hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
    for _ in range(10):
        hook.get_task(task_ids[0])
    with pytest.raises(KieRateLimitError):
        hook.get_task(task_ids[0])
    assert len(kie_emulator.state.tasks) == 20


def test_rate_limit_as_http_429(kie_emulator):
    kie_emulator.config.update({"rate_limits": True, "record_limit": [1, 60], "rate_limit_http_status": 429})
    session = requests.Session()
    session.headers["Authorization"] = "Bearer k"
    url = f"{kie_emulator.url}{api.RECORD_INFO_PATH}?taskId=x"
    session.get(url)
    reply = session.get(url)
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "1" and reply.json()["code"] == 429


@pytest.mark.parametrize("prompt", ["a calm sea", "[fail] a calm sea"])
async def test_callback_payload_and_signature(kie_emulator, callback_receiver, prompt):
    kie_emulator.config.update(
        {"callback_secret": "hmac-key", "generating_seconds": 0.1, "waiting_seconds": 0}
    )
    task_id = await asyncio.to_thread(
        KieHook().create_task,
        models.SEEDREAM_EDIT_MODEL,
        {**EDIT_INPUT, "prompt": prompt},
        callback_receiver.url,
    )
    ((headers, raw),) = await callback_receiver.wait()
    body = json.loads(raw)
    success = "[fail]" not in prompt
    assert body["code"] == (200 if success else 501)
    assert body["msg"] == (
        "Playground task completed successfully." if success else "Playground task failed."
    )
    task = api.parse_task(body["data"])
    assert task.kie_task_id == task_id and task.state.value == ("success" if success else "fail")
    timestamp = headers["X-Webhook-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 30
    assert headers["X-Webhook-Signature"] == callback_signature("hmac-key", task_id, timestamp)
    assert kie_emulator.state.callbacks[0]["delivered"] is True


def test_control_api(kie_emulator):
    url = kie_emulator.url
    assert (
        requests.post(f"{url}/_emulator/config", json={"generating_seconds": 60}).json()["generating_seconds"]
        == 60
    )
    assert requests.post(f"{url}/_emulator/config", json={"nope": 1}).status_code == 400
    assert requests.post(f"{url}/_emulator/faults", json={"kind": "429", "endpoint": "createTask"}).ok
    assert requests.post(f"{url}/_emulator/faults", json={"kind": "boom"}).status_code == 400
    hook = KieHook(retry_policy=RetryPolicy(max_attempts=2, base_delay=0.01))
    task_id = hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
    forced = requests.post(f"{url}/_emulator/tasks/{task_id}", json={"state": "success"}).json()
    assert forced["state"] == "success"
    log = requests.get(f"{url}/_emulator/requests").json()
    assert [r["code"] for r in log if r["endpoint"] == "createTask"] == [429, 200]
    assert all("emulator" not in json.dumps(r) or r["key_sha256"] for r in log)
    assert requests.get(f"{url}/_emulator/tasks").json()[0]["taskId"] == task_id
    requests.post(f"{url}/_emulator/reset")
    assert requests.get(f"{url}/_emulator/tasks").json() == []


def test_command_line(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_kie.emulator",
            "--port",
            str(port),
            "--generating-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert f"http://127.0.0.1:{port}" in process.stdout.readline()
        conn = json.loads(process.stdout.readline().partition("=")[2])
        reply = requests.get(
            f"{conn['host']}{api.CREDITS_PATH}", headers={"Authorization": "Bearer k"}, timeout=5
        )
        assert reply.json() == {"code": 200, "msg": "success", "data": 1000}
    finally:
        process.terminate()
        assert process.wait(10) == 0


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"model": "seedream/4.5-edit", "input": {**EDIT_INPUT, "aspect_ratio": "5:4"}}, "aspect_ratio"),
        ({"model": "seedream/4.5-edit", "input": {**EDIT_INPUT, "prompt": "x" * 3001}}, "prompt"),
        ({"model": "seedream/4.5-edit", "input": {**EDIT_INPUT, "prompt": "  "}}, "prompt"),
        ({"model": "seedream/4.5-edit", "input": {**EDIT_INPUT, "image_urls": []}}, "image_urls"),
        ({"model": "seedream/4.5-edit", "input": {**EDIT_INPUT, "image_urls": ["/x.png"]}}, "image_urls"),
        ({"model": "seedream/4.5-edit", "input": {**EDIT_INPUT, "quality": None}}, "quality"),
        ({"model": "seedream/4.5-text-to-image", "input": {"prompt": "p", "aspect_ratio": "1:1"}}, "quality"),
        ({"model": "seedream/4.5-edit", "input": EDIT_INPUT, "callBackUrl": "not a url"}, "callBackUrl"),
        ({"model": "seedream/4.5-edit"}, "input"),
        ({"input": EDIT_INPUT}, "model"),
    ],
)
def test_create_task_is_checked_against_kie_openapi_not_the_client(kie_emulator, body, problem):
    # Sent raw, past the client's own validation: the emulator judges by Kie's vendored schema.
    reply = requests.post(
        f"{kie_emulator.url}{api.CREATE_TASK_PATH}",
        json=body,
        headers={"Authorization": "Bearer k"},
        timeout=5,
    ).json()
    assert reply["code"] == 422 and problem in reply["msg"]
    assert kie_emulator.state.tasks == {}


def test_models_without_a_vendored_schema_are_accepted(kie_emulator):
    reply = requests.post(
        f"{kie_emulator.url}{api.CREATE_TASK_PATH}",
        json={"model": "some/video-model", "input": {"duration": 5}},
        headers={"Authorization": "Bearer k"},
        timeout=5,
    ).json()
    assert reply["code"] == 200 and reply["data"]["taskId"] in kie_emulator.state.tasks


@pytest.mark.parametrize(
    ("model", "task_input", "extension", "media_type", "magic"),
    [
        ("kling-2.6/text-to-video", {"prompt": "waves", "sound": False, "aspect_ratio": "16:9", "duration": "5"}, "mp4", "video/mp4", b"ftyp"),
        ("elevenlabs/text-to-speech-multilingual-v2", {"text": "Hello", "voice": "EkK5I93UQWFDigLMpZcX"}, "mp3", "audio/mpeg", b"ID3"),
        (models.SEEDREAM_EDIT_MODEL, EDIT_INPUT, "png", "image/png", b"PNG"),
    ],
)  # fmt: skip
def test_results_are_of_the_models_kind(hook, kie_emulator, model, task_input, extension, media_type, magic):
    kie_emulator.config.generating_seconds = 0.05
    task_id = hook.create_task(model, task_input)
    deadline = time.monotonic() + 10
    while (task := hook.get_task(task_id)).state is not TaskState.SUCCESS and time.monotonic() < deadline:
        time.sleep(0.05)
    (url,) = task.result_urls
    assert url.endswith(f".{extension}")
    response = requests.get(url, timeout=10)
    assert response.headers["Content-Type"] == media_type and magic in response.content[:12]


def test_the_emulator_refuses_what_the_catalog_forbids_in_its_own_words(hook, kie_emulator):
    given = {"prompt": "waves", "sound": False, "aspect_ratio": "16:9", "duration": "7"}
    with pytest.raises(KieValidationError, match=r"input\.duration.*'7' is not one of"):
        hook.create_task("kling-2.6/text-to-video", given, validate=False)
