"""Callbacks: once a task with a ``callBackUrl`` ends, POST its record there as Kie does (signed with
the webhook HMAC key when one is set), retrying a failed delivery up to ``callback_attempts`` times; ``callback_drop_rate`` of them are lost."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import random
import time
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from airflow_provider_kie.emulator.state import EmulatedTask, EmulatorState, task_record

CALLBACKS_KEY = web.AppKey("callback_jobs", set)


def signature(webhook_key: str, kie_task_id: str, timestamp: str) -> str:
    """Kie's ``X-Webhook-Signature``: base64 of HMAC-SHA256 under the webhook HMAC key of
    ``taskId + "." + timestamp`` (docs/kie-api.md §3). Written here, not taken from the client, so a
    mistake in the client's check cannot be matched by the same mistake in what it checks."""
    message = f"{kie_task_id}.{timestamp}".encode()
    return base64.b64encode(hmac.new(webhook_key.encode(), message, hashlib.sha256).digest()).decode()


def schedule_callback(app: web.Application, state: EmulatorState, task: EmulatedTask) -> None:
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
        headers["X-Webhook-Signature"] = signature(state.config.callback_secret, task.task_id, timestamp)
    delivery: dict[str, Any] = {"task_id": task.task_id, "url": task.body["callBackUrl"], "attempts": 0}
    with state.lock:
        state.callbacks.append(delivery)
    if random.random() < state.config.callback_drop_rate:
        delivery["delivered"] = False
        delivery["dropped"] = True
        return
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
                        delivery["answered_at"] = time.time()
                        return
            except Exception as error:  # a failed delivery is recorded, never raised: Kie does the same
                delivery["error"] = type(error).__name__
            await asyncio.sleep(min(2.0**attempt, 10.0) / 10)
    delivery["delivered"] = False


async def cancel_callbacks(app: web.Application) -> None:
    jobs: set[Any] = app[CALLBACKS_KEY]
    for job in list(jobs):
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await job
