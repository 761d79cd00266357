"""verify_callback_signature against Kie's documented scheme and against callbacks the emulator sends."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest

from airflow_provider_kie import models
from airflow_provider_kie.callbacks import KieSignatureError, verify_callback_signature
from airflow_provider_kie.hooks.kie import KieHook
from tests.support import EDIT_INPUT

SECRET = "whk_0123456789"
BODY = {"code": 200, "msg": "Playground task completed successfully.", "data": {"taskId": "abc", "state": "success",
        "resultJson": "{\"resultUrls\": [\"https://x/y.png\"]}"}}  # fmt: skip


def signed(task_id="abc", timestamp=None, secret=SECRET):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    # Written out here from kie-api.md §3, independently of the provider's code.
    digest = hmac.new(secret.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return {"X-Webhook-Timestamp": timestamp, "X-Webhook-Signature": base64.b64encode(digest).decode()}


def test_valid_signature_returns_the_task():
    task = verify_callback_signature(signed(), json.dumps(BODY).encode(), SECRET)
    assert task.kie_task_id == "abc" and task.result_urls == ("https://x/y.png",)


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"task_id": "abc", "state": "success", "resultJson": '{"resultUrls": ["https://x/y.png"]}'}},
        {"taskId": "abc", "data": {"state": "fail"}},
    ],
)
def test_task_id_in_the_other_documented_places(body):
    assert verify_callback_signature(signed(), body, SECRET).kie_task_id == "abc"


# Signed when the test runs, not when it is collected: a long session must not make them stale.
@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (lambda: {}, "missing"),
        (lambda: {"X-Webhook-Timestamp": "1"}, "missing"),
        (lambda: signed(timestamp=int(time.time()) - 301), "stale"),
        (lambda: signed(timestamp=int(time.time()) + 3600), "stale"),
        (lambda: {**signed(), "X-Webhook-Timestamp": "yesterday"}, "Unix seconds"),
        (lambda: signed(secret="another-key"), "does not match"),
        (lambda: signed(task_id="another-task"), "does not match"),
        (lambda: {**signed(), "X-Webhook-Signature": "AAAA"}, "does not match"),
    ],
    ids=[
        "no-headers",
        "no-signature",
        "stale",
        "future",
        "bad-timestamp",
        "wrong-key",
        "other-task",
        "garbage",
    ],
)
def test_rejected(headers, reason):
    with pytest.raises(KieSignatureError, match=reason):
        verify_callback_signature(headers(), json.dumps(BODY), SECRET)


def test_max_age_is_configurable_and_headers_case_insensitive():
    headers = {k.lower(): v for k, v in signed(timestamp=int(time.time()) - 600).items()}
    assert (
        verify_callback_signature(headers, BODY, SECRET, max_age=timedelta(minutes=15)).kie_task_id == "abc"
    )


@pytest.mark.parametrize("body", [b"not json", b"[1]", json.dumps({"data": {}}).encode()])
def test_bad_bodies(body):
    with pytest.raises(KieSignatureError):
        verify_callback_signature(signed(), body, SECRET)


async def test_callbacks_sent_by_the_emulator_verify(kie_emulator, callback_receiver):
    kie_emulator.config.update({"callback_secret": SECRET, "waiting_seconds": 0, "generating_seconds": 0.1})
    task_id = await asyncio.to_thread(
        KieHook().create_task, models.SEEDREAM_EDIT_MODEL, EDIT_INPUT, callback_receiver.url
    )
    ((headers, body),) = await callback_receiver.wait()
    task = verify_callback_signature(headers, body, SECRET)
    assert task.kie_task_id == task_id and task.result_urls
