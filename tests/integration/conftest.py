from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from aiohttp import web

from airflow_provider_kie.emulator import KieEmulator
from airflow_provider_kie.hooks.kie import KieAsyncHook, KieHook
from airflow_provider_kie.hooks.limits import close_shared_async_sessions
from airflow_provider_kie.triggers import kie as kie_triggers


@pytest.fixture
def hook(kie_emulator: KieEmulator, fast_retries) -> KieHook:
    kie_emulator.config.null_seconds = 0.0
    hook = KieHook(retry_policy=fast_retries)
    yield hook
    hook.close()


@pytest.fixture
async def async_hook(kie_emulator: KieEmulator, fast_retries):
    kie_emulator.config.null_seconds = 0.0
    async with KieAsyncHook(retry_policy=fast_retries) as hook:
        yield hook
    await close_shared_async_sessions()


EDIT_INPUT = {
    "prompt": "Turn the dress into clear water",
    "image_urls": ["https://static.aiquickdraw.com/tools/example/1764851484363_ScV1s2aq.webp"],
    "aspect_ratio": "1:1",
    "quality": "basic",
}


class CallbackReceiver:
    """A callBackUrl on 127.0.0.1 that records (headers, raw body) of each POST and answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.url = ""

    async def wait(self, count: int = 1, timeout: float = 5.0) -> list[tuple[dict, bytes]]:
        for _ in range(int(timeout / 0.05)):
            if len(self.received) >= count:
                break
            await asyncio.sleep(0.05)
        return self.received


@pytest.fixture
async def callback_receiver():
    receiver = CallbackReceiver()

    async def handle(request: web.Request) -> web.Response:
        receiver.received.append((dict(request.headers), await request.read()))
        return web.json_response({"code": 200, "msg": "success"})

    app = web.Application()
    app.router.add_post("/callback", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/callback"
    yield receiver
    await runner.cleanup()


class TriggererXCom(dict):
    """The XCom of one task instance as a triggerer would read and write it, kept in memory.

    ``run_in_triggerer`` gives a trigger the task instance a triggerer gives it, so it takes the paths it
    takes there: create and remember the Kie task, end the Airflow task itself on success.
    """

    ti = SimpleNamespace(dag_id="dag", task_id="edit", run_id="run", map_index=-1, try_number=1)

    async def aset(self, key, value, **target):
        assert target == {k: getattr(self.ti, k) for k in ("dag_id", "task_id", "run_id", "map_index")}
        self[key] = json.loads(json.dumps(value))  # XCom must be JSON-safe

    async def aget_one(self, *, key, **target):
        return self.get(key)

    def run_in_triggerer(self, trigger):
        """The first event of ``trigger`` run with this task instance; on Airflow 2 the event's XCom is
        stored here, as the triggerer does."""
        trigger.task_instance = self.ti

        async def first():
            try:
                async for event in trigger.run():
                    return event
            finally:
                await close_shared_async_sessions()

        event = asyncio.run(first())
        if getattr(event, "xcoms", None):
            self.update(event.xcoms)
        return event


@pytest.fixture
def triggerer_xcom(monkeypatch) -> TriggererXCom:
    store = TriggererXCom()
    if kie_triggers.TRIGGER_WRITES_XCOM:
        monkeypatch.setattr(kie_triggers, "_SdkXCom", store)
    return store
