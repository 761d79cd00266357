from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from airflow_provider_kie.emulator import KieEmulator
from airflow_provider_kie.hooks.kie import KieAsyncHook, KieHook
from airflow_provider_kie.hooks.limits import close_shared_async_sessions


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
