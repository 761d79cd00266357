from __future__ import annotations

import pytest

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
