"""Kie's callbacks: the URL a task's ``callBackUrl`` points at (the provider's ``/kie`` plugin on the
Airflow API server, with a token only holders of the connection's API key can mint), and the check of
Kie's signature (docs/kie-api.md §3) in any receiver of them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from airflow_provider_kie import api
from airflow_provider_kie.api import KieTask
from airflow_provider_kie.exceptions import KieSignatureError

__all__ = ["CallbackTarget", "KieSignatureError", "callback_token", "sign", "verify_callback_signature"]

TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"
#: Where the provider's plugin is mounted on the Airflow API server (callbacks, the results gallery).
PLUGIN_PREFIX = "/kie"
#: A callback the receiver accepted is kept as an Airflow Variable named this plus the Kie task id: a
#: hint that waiting triggers find by listing the keys (one request per triggerer, not per task).
HINT_PREFIX = "kie_callback."
#: The header a triggerer's hint reader sends its :func:`hints_token` in.
HINTS_HEADER = "X-Kie-Hints-Token"


@dataclass(frozen=True)
class CallbackTarget:
    """The Airflow task instance a callback URL wakes, and the connection whose API key minted its token."""

    conn_id: str
    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    #: The item of a batch the callback is for: the receiver then reads that item's chunk of the
    #: batch's record, not the whole record.
    item: int | None = None

    @classmethod
    def of(cls, conn_id: str, ti: Any) -> CallbackTarget:
        map_index = getattr(ti, "map_index", -1)
        return cls(conn_id, ti.dag_id, ti.task_id, ti.run_id, -1 if map_index is None else map_index)

    @property
    def ref(self) -> str:
        """The URL's path segment: the target as base64url JSON (it names, it does not authorize)."""
        fields: list[Any] = [self.conn_id, self.dag_id, self.task_id, self.run_id, self.map_index]
        if self.item is not None:
            fields.append(self.item)
        raw = json.dumps(fields, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def from_ref(cls, ref: str) -> CallbackTarget:
        """Raises ValueError for anything :attr:`ref` cannot have produced."""
        try:
            fields = json.loads(base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError) as error:
            raise ValueError("not a callback reference") from error
        if (
            not isinstance(fields, list)
            or len(fields) not in (5, 6)
            or not all(isinstance(f, str) and f for f in fields[:4])
            or not all(isinstance(f, int) and not isinstance(f, bool) for f in fields[4:])
        ):
            raise ValueError("not a callback reference")
        return cls(*fields)

    def for_item(self, item: int) -> CallbackTarget:
        return replace(self, item=item)

    def url(self, base_url: str, api_key: str) -> str:
        """The ``callBackUrl``: ``<base>/kie/callbacks/<ref>?token=<token>`` (Airflow's access log hides
        a ``token`` query value)."""
        return f"{receiver_url(base_url)}{self.ref}?token={callback_token(api_key, self.ref)}"


def receiver_url(base_url: str) -> str:
    """Where the plugin on the API server at ``base_url`` takes Kie's callbacks (a task's ref follows)."""
    return f"{base_url.rstrip('/')}{PLUGIN_PREFIX}/callbacks/"


def calls_back(param: Mapping[str, Any] | None, base_url: str) -> bool:
    """Whether a Kie task created with ``param`` (its createTask body, as recordInfo reports it) calls
    the plugin at ``base_url`` back when it ends."""
    url = (param or {}).get("callBackUrl")
    return isinstance(url, str) and url.startswith(receiver_url(base_url))


def callback_token(api_key: str, ref: str) -> str:
    """HMAC of the reference under a key derived from the API key: only a holder of the key can mint it,
    and it wakes only its own task instance."""
    return _mint(api_key, ref)


def hints_token(api_key: str, conn_id: str) -> str:
    """What a triggerer shows the plugin to list the hints (``GET /kie/hints``): only a holder of the
    connection's API key can mint it."""
    return _mint(api_key, f"hints:{conn_id}")


def _mint(api_key: str, message: str) -> str:
    derived = hmac.new(api_key.encode(), b"airflow-provider-kie callback token", hashlib.sha256).digest()
    digest = hmac.new(derived, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


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


def callback_task_id(body: bytes | str | Mapping[str, Any]) -> str:
    """The Kie task id a callback body names (raises :class:`KieSignatureError` for a body that is not a
    JSON object or names none)."""
    return _task_id(_payload(body))


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
