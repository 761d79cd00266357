"""The callback receiver: ``POST /kie/callbacks/<ref>?token=<token>`` on the Airflow API server.

It is on the public internet and Airflow's auth does not cover plugin apps, so it trusts nothing it is
sent: the token must be the one the connection's API key mints for the task instance the reference
names; with the connection's ``webhook_secret`` Kie's signature must match, be recent and not seen
before; the Kie task must be the one that task instance waits for. Then it only leaves a hint (an
Airflow Variable ``kie_callback.<kie task id>``): the waiting trigger reads the task from Kie again, it
never takes the body's word for the outcome.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from airflow_provider_kie.callbacks import (
    HINT_PREFIX,
    HINTS_HEADER,
    TIMESTAMP_HEADER,
    CallbackTarget,
    callback_task_id,
    callback_token,
    hints_token,
    verify_callback_signature,
)
from airflow_provider_kie.compat import metadata
from airflow_provider_kie.exceptions import KieError, KieSignatureError
from airflow_provider_kie.ledger import created_kie_task_id

log = logging.getLogger(__name__)

#: Kie's callback bodies are a few kilobytes; anything far larger is not Kie.
MAX_BODY_BYTES = 64 * 1024
#: Hints older than this are deleted (a waiting trigger reads its hint within seconds; a replayed
#: signature is refused as stale after five minutes anyway).
HINT_KEEP_SECONDS = 3600.0
_PRUNE_EVERY_SECONDS = 60.0


class _Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


def router() -> APIRouter:
    routes = APIRouter()
    pruned = {"at": 0.0}

    @routes.post("/callbacks/{ref}")
    async def receive(ref: str, request: Request) -> JSONResponse:
        try:
            body = await _read_body(request)
            target, settings = await run_in_threadpool(
                _authorized, ref, request.query_params.get("token", "")
            )
            kie_task_id = _kie_task_id(body)
            timestamp = None
            if settings.webhook_secret:
                try:
                    verify_callback_signature(request.headers, body, settings.webhook_secret)
                except KieSignatureError as error:
                    raise _Rejected(401, str(error))
                except KieError as error:  # signed, but not a task record: the hint is still only a hint
                    raise _Rejected(400, str(error))
                timestamp = request.headers.get(TIMESTAMP_HEADER)
            prune = time.monotonic() - pruned["at"] > _PRUNE_EVERY_SECONDS
            if prune:
                pruned["at"] = time.monotonic()
            await run_in_threadpool(_leave_hint, target, kie_task_id, timestamp, prune)
        except _Rejected as rejected:
            return JSONResponse(
                {"code": rejected.status, "msg": rejected.message}, status_code=rejected.status
            )
        log.info("Kie callback for task %s: hint left for %s", kie_task_id, target.task_id)
        return JSONResponse({"code": 200, "msg": "success"})

    @routes.get("/hints")
    async def hints(request: Request, conn_id: str) -> JSONResponse:
        """The Kie task ids with a hint, for a triggerer's hint reader (hints.py): one request
        a second per triggerer, answered straight from the database."""
        try:
            await run_in_threadpool(_may_list_hints, conn_id, request.headers.get(HINTS_HEADER, ""))
        except _Rejected as rejected:
            return JSONResponse({"msg": rejected.message}, status_code=rejected.status)
        return JSONResponse({"kie_task_ids": await run_in_threadpool(_hinted_task_ids)})

    return routes


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _Rejected(413, f"callback body over {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise _Rejected(413, f"callback body over {MAX_BODY_BYTES} bytes")
    return bytes(body)


def _authorized(ref: str, token: str) -> tuple[CallbackTarget, Any]:
    """The target and its connection's settings, if ``token`` is the one its API key mints."""
    if not token:
        raise _Rejected(403, "no token: use the callBackUrl the provider sent")
    try:
        target = CallbackTarget.from_ref(ref)
    except ValueError:
        raise _Rejected(404, "no such callback")
    settings = _settings(target.conn_id, "no such callback")
    if not hmac.compare_digest(callback_token(settings.api_key, ref).encode(), token.encode()):
        raise _Rejected(403, "wrong token for this callback")
    return target, settings


def _may_list_hints(conn_id: str, token: str) -> None:
    if not token:
        raise _Rejected(403, f"no {HINTS_HEADER}")
    settings = _settings(conn_id, "no such connection")
    if not hmac.compare_digest(hints_token(settings.api_key, conn_id).encode(), token.encode()):
        raise _Rejected(403, f"wrong {HINTS_HEADER}")


def _hinted_task_ids() -> list[str]:
    from sqlalchemy import select

    db = metadata()
    with db.session() as session:
        keys = session.scalars(select(db.Variable.key).where(db.Variable.key.startswith(HINT_PREFIX)))
        return [key[len(HINT_PREFIX) :] for key in keys]


def _settings(conn_id: str, not_found: str) -> Any:
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    from airflow_provider_kie.hooks.settings import KieConnectionSettings

    try:
        return KieConnectionSettings.from_connection(
            metadata().Connection.get_connection_from_secrets(conn_id)
        )
    except (AirflowNotFoundException, KieError):
        raise _Rejected(404, not_found)


def _awaited_task_id(session: Any, target: CallbackTarget) -> str | None:
    """The Kie task the target task instance's job created, as the ledger kept it in XCom (one indexed
    row, whatever the number of jobs)."""
    xcom = metadata().XComModel

    def stored(key: str) -> Any:
        rows = xcom.get_many(
            run_id=target.run_id,
            key=key,
            dag_ids=target.dag_id,
            task_ids=target.task_id,
            map_indexes=target.map_index,
        )
        row = session.scalars(rows).first()
        return None if row is None else xcom.deserialize_value(row)

    return created_kie_task_id(stored, target.item or 0)


def _kie_task_id(body: bytes) -> str:
    try:
        return callback_task_id(body)
    except KieSignatureError as error:
        raise _Rejected(400, str(error))


def _leave_hint(target: CallbackTarget, kie_task_id: str, timestamp: str | None, prune: bool) -> None:
    """Refuse a task the target does not wait for, or a signed callback already received; else leave
    the hint. The hint's row is locked while it is read and written, so two API server workers cannot
    both take a replay of a callback already received."""
    from sqlalchemy import delete, select

    db = metadata()
    Variable = db.Variable
    key = HINT_PREFIX + kie_task_id
    now = datetime.now(timezone.utc)
    with db.session() as session:
        if kie_task_id != _awaited_task_id(session, target):
            raise _Rejected(404, "this task instance does not wait for that Kie task")
        existing = session.scalars(select(Variable).where(Variable.key == key).with_for_update()).first()
        seen: list[str] = []
        if existing is not None:
            try:
                seen = list(json.loads(existing.val or "{}").get("timestamps", []))
            except (ValueError, AttributeError):
                seen = []
        if timestamp is not None and timestamp in seen:
            raise _Rejected(409, "callback already received (a replay)")
        value = {"timestamps": ([*seen, timestamp] if timestamp else seen)[-20:], "received": now.isoformat()}
        Variable.set(
            key,
            value,
            description=f"{now.isoformat()} Kie callback hint (airflow-provider-kie), deleted after an hour",
            serialize_json=True,
            session=session,
        )
        if prune:
            cutoff = datetime.fromtimestamp(now.timestamp() - HINT_KEEP_SECONDS, timezone.utc).isoformat()
            session.execute(
                delete(Variable).where(Variable.key.startswith(HINT_PREFIX), Variable.description < cutoff)
            )
