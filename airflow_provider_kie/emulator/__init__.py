"""An offline Kie.ai API for tests and demos: ``python -m airflow_provider_kie.emulator --port 8765``.

The package: ``state`` (settings, tasks, request log), ``routes`` (Kie's endpoints), ``faults`` (the fault
table), ``schema`` (createTask checked against Kie's vendored OpenAPI documents in ``openapi/``),
``callbacks`` (delivery to ``callBackUrl``), ``control`` (``/_emulator/*``), ``app`` (the wiring).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from aiohttp import web

from airflow_provider_kie.connection import connection_json
from airflow_provider_kie.emulator.app import build_app
from airflow_provider_kie.emulator.faults import FAULT_KINDS, Fault
from airflow_provider_kie.emulator.state import EmulatorConfig, EmulatorState, RequestRecord

__all__ = ["FAULT_KINDS", "EmulatorConfig", "Fault", "KieEmulator", "RequestRecord"]


class KieEmulator:
    """The emulator running in a background thread of this process, on 127.0.0.1.

    ``with KieEmulator() as kie: ...`` gives ``kie.url`` (base URL for the connection's host),
    ``kie.state`` (tasks, request log, faults) and helpers to inject faults and count requests.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = EmulatorState(config)
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def config(self) -> EmulatorConfig:
        return self.state.config

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connection_uri(self, api_key: str = "emulator-key", *, client_rate_limits: bool | None = None) -> str:
        """A JSON connection for ``AIRFLOW_CONN_<ID>`` pointing at this emulator.

        The client's own rate limiter follows the emulator's (``config.rate_limits``) unless
        ``client_rate_limits`` says otherwise, so tests are not slowed by limits nobody enforces.
        """
        extra: dict[str, Any] = {"upload_base_url": self.url}
        if not (self.config.rate_limits if client_rate_limits is None else client_rate_limits):
            extra["rate_limits"] = {}
        return connection_json(api_key, self.url, **extra)

    def start(self) -> KieEmulator:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as error:
                failure.append(error)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name="kie-emulator", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise failure[0]
        return self

    async def _serve(self) -> None:
        self._runner = web.AppRunner(build_app(self.state), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self.state.public_url = self.url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> KieEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_until_idle(self, timeout: float = 10.0) -> None:
        """Wait for requests still being handled (a delayed createTask may yet create a task)."""
        deadline = time.monotonic() + timeout
        while self.state.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)

    def reset(self, config: EmulatorConfig | None = None) -> None:
        """Forget tasks, requests, faults and files; start over from ``config`` (defaults if None)."""
        self.wait_until_idle()
        self.state.config = config or EmulatorConfig()
        self.state.reset()

    def add_fault(self, kind: str, endpoint: str = "*", times: int | None = 1, **kwargs: Any) -> None:
        self.state.add_fault(Fault(kind=kind, endpoint=endpoint, times=times, **kwargs))

    def set_page(self, model: str, entry: dict[str, Any] | None) -> None:
        """Make Kie's page of ``model`` document ``entry`` (facts in the catalog's format: a model added,
        or its keys, values and limits changed); None takes the model off Kie's pages. createTask
        follows the page."""
        with self.state.lock:
            self.state.pages[model] = entry

    @property
    def page_requests(self) -> list[RequestRecord]:
        """The requests Kie's docs host (``/llms.txt``, the model pages) received."""
        with self.state.lock:
            return list(self.state.page_requests)

    def count(self, endpoint: str) -> int:
        """Requests received on ``endpoint`` ('createTask', 'recordInfo', 'credit', 'download-url', 'upload')."""
        return self.state.count(endpoint)

    @property
    def requests(self) -> list[RequestRecord]:
        with self.state.lock:
            return list(self.state.requests)
