"""Verify Kie's callback signatures (docs/kie-api.md §3) in a receiver of ``callback_url`` POSTs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow_provider_kie import api
from airflow_provider_kie.api import KieTask
from airflow_provider_kie.exceptions import KieSignatureError

__all__ = ["KieSignatureError", "sign", "verify_callback_signature"]

TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"


def sign(secret: str, kie_task_id: str, timestamp: str) -> str:
    """base64(HMAC-SHA256(webhookHmacKey, taskId + "." + timestamp)), as Kie computes it."""
    digest = hmac.new(secret.encode(), f"{kie_task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_callback_signature(
    headers: Mapping[str, str],
    body: bytes | str | Mapping[str, Any],
    secret: str,
    max_age: timedelta = timedelta(minutes=5),
    *,
    now: float | None = None,
) -> KieTask:
    """Check a callback's HMAC headers in constant time and return the task it reports.

    Kie signs only ``taskId + "." + timestamp``, not the body: treat the returned task as a hint and
    re-read it with ``KieHook.get_task`` before acting on it.
    """
    if not secret:
        raise KieSignatureError("no webhook HMAC key given to verify the callback with")
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp or not signature:
        raise KieSignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        raise KieSignatureError(f"{TIMESTAMP_HEADER} is not Unix seconds: {timestamp[:40]!r}")
    if abs(age) > max_age.total_seconds():
        raise KieSignatureError(f"stale callback: signed {age:.0f} s ago, more than {max_age} allowed")
    payload = _payload(body)
    task_id = _task_id(payload)
    if not hmac.compare_digest(sign(secret, task_id, timestamp).encode(), signature.strip().encode()):
        raise KieSignatureError(
            "signature does not match: forged, or signed with another key", kie_task_id=task_id
        )
    data = payload.get("data")
    return api.parse_task({"taskId": task_id, **(data if isinstance(data, Mapping) else {})})


def _payload(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise KieSignatureError("callback body is not JSON")
    if not isinstance(payload, Mapping):
        raise KieSignatureError("callback body is not a JSON object")
    return payload


def _task_id(payload: Mapping[str, Any]) -> str:
    # Kie's docs disagree on where the id is (docs/kie-api.md §3 ⚠): data.taskId, data.task_id, taskId.
    data = payload.get("data")
    data = data if isinstance(data, Mapping) else {}
    for candidate in (data.get("taskId"), data.get("task_id"), payload.get("taskId")):
        if isinstance(candidate, str) and candidate:
            return candidate
    raise KieSignatureError("callback body has no taskId")
