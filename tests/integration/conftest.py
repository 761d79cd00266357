from __future__ import annotations

import json

import pytest
from aiohttp import web

from airflow_provider_kie import compat
from airflow_provider_kie import ledger as ledger_module
from airflow_provider_kie.emulator import KieEmulator
from airflow_provider_kie.hooks.kie import KieAsyncHook, KieHook
from airflow_provider_kie.hooks.sessions import close_shared_async_sessions
from airflow_provider_kie.testing import EMULATOR_API_KEY
from tests.support import CallbackReceiver, TriggererXCom

#: The API server that connection ``kie_default`` names in ``callback_base_url`` (nothing listens there:
#: the emulator's callbacks fail, as a lost callback does).
CALLBACK_BASE_URL = "http://127.0.0.1:9/airflow"


@pytest.fixture(autouse=True)
def upload_cache(tmp_path, monkeypatch):
    """A cache of uploads of this test's own: the emulator forgets its files between tests."""
    from airflow_provider_kie import inputs

    monkeypatch.setattr(inputs, "CACHE_DIR", tmp_path / "upload-cache")
    return tmp_path / "upload-cache"


@pytest.fixture(autouse=True)
def no_resume_settle(monkeypatch):
    """Triggers resume their task at once: no scheduler here races with the deferral (the settle time
    itself is tested in test_triggers and on a real Airflow in the system tests). A claim on a create
    settles in 0.05 s (the triggers of a test share one event loop, so another's claim lands sooner) and
    is another runner's for 1 s."""
    monkeypatch.setattr(compat, "RESUME_SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(ledger_module, "CLAIM_SETTLE_SECONDS", 0.05)
    monkeypatch.setattr(ledger_module, "CLAIM_LIVE_SECONDS", 1.0)


@pytest.fixture
def fast_kie(kie_emulator):
    """The emulator with tasks that finish in a fraction of a second."""
    kie_emulator.config.update({"waiting_seconds": 0.05, "generating_seconds": 0.1, "null_seconds": 0.05})


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


@pytest.fixture
def calling_back(kie_emulator, monkeypatch) -> str:
    """Connection ``kie_default`` with ``callback_base_url``: Kie calls the provider's plugin back."""
    connection = json.loads(kie_emulator.connection_uri(EMULATOR_API_KEY))
    connection["extra"]["callback_base_url"] = CALLBACK_BASE_URL
    monkeypatch.setenv("AIRFLOW_CONN_KIE_DEFAULT", json.dumps(connection))
    return CALLBACK_BASE_URL


@pytest.fixture
def triggerer_xcom(monkeypatch) -> TriggererXCom:
    store = TriggererXCom()
    if compat.TRIGGER_WRITES_XCOM:
        monkeypatch.setattr(compat, "TriggerXCom", store)
        monkeypatch.setattr(compat, "PreserializedTriggerXCom", store)
    return store
