"""Callback hints in a triggerer: the provider's ``/kie`` plugin keeps each callback Kie sent as an
Airflow Variable (``kie_callback.<kie task id>``); one reader per triggerer process (and connection)
lists them once a second while any of its triggers waits, and wakes the triggers whose task is named. A
thousand waiting tasks cost one request a second, not a thousand; polling goes on beside it as a slow
safety net, so a lost callback only delays a task.

The reader asks the plugin (``GET <callback_base_url>/kie/hints``), which answers from the database
in milliseconds. The Task SDK's ``Variable.keys`` would answer the same, but through the triggerer's
supervisor, which serves its runner's requests one at a time between its own work: while a triggerer
takes on hundreds of new triggers, that listing waited up to 8 s (docs/callbacks.md). It remains the
fallback when the plugin cannot be reached."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_kie.callbacks import HINT_PREFIX, HINTS_HEADER, PLUGIN_PREFIX, calls_back, hints_token
from airflow_provider_kie.compat import trigger_lists_variables
from airflow_provider_kie.events import JobRef

log = logging.getLogger(__name__)

#: How often a triggerer lists the hints while any of its triggers waits for one.
HINT_READ_INTERVAL = 1.0
#: How often a task is polled after its hint came, should Kie not report it finished yet.
AFTER_HINT_INTERVAL = 3.0
#: How often a task waiting for its callback is polled anyway (a callback may be lost), at least, unless
#: ``[kie] callback_safety_net_interval`` says otherwise.
SAFETY_NET_INTERVAL = 60.0
#: The recordInfo reads per second a triggerer's safety-net polls may take together (a fifth of Kie's
#: 10 per key), so the reads hints ask for are not queued behind them: 1,000 waiting tasks are each
#: polled every 500 s.
SAFETY_NET_READS_PER_SECOND = 2.0


#: After the plugin could not be reached, list through the Task SDK this long before trying it again.
PLUGIN_RETRY_SECONDS = 60.0


def _list_hint_keys() -> frozenset[str]:
    from airflow.sdk import Variable

    return frozenset(Variable.keys(prefix=HINT_PREFIX))


class PluginHintLister:
    """Lists the hints of connection ``conn_id`` from the plugin at ``base_url``; falls back to
    :func:`_list_hint_keys` for :data:`PLUGIN_RETRY_SECONDS` whenever the plugin cannot answer."""

    def __init__(self, base_url: str, conn_id: str, api_key: str) -> None:
        import requests

        self.url = f"{base_url.rstrip('/')}{PLUGIN_PREFIX}/hints"
        self.conn_id = conn_id
        self.headers = {HINTS_HEADER: hints_token(api_key, conn_id)}
        self.session = requests.Session()
        self.fallback_until = 0.0

    def __call__(self) -> frozenset[str]:
        import requests

        if time.monotonic() < self.fallback_until:
            return _list_hint_keys()
        try:
            response = self.session.get(
                self.url, params={"conn_id": self.conn_id}, headers=self.headers, timeout=5
            )
            response.raise_for_status()
            return frozenset(HINT_PREFIX + kie_task_id for kie_task_id in response.json()["kie_task_ids"])
        except (requests.RequestException, ValueError, KeyError, TypeError) as error:
            log.warning(
                "Cannot list Kie callback hints from %s (%s); listing them through Airflow's Variables for "
                "%.0f s",
                self.url,
                error,  # the URL and status; the token is in a header, never in it
                PLUGIN_RETRY_SECONDS,
            )
            self.fallback_until = time.monotonic() + PLUGIN_RETRY_SECONDS
            return _list_hint_keys()


def safety_net_interval() -> float:
    from airflow.providers.common.compat.sdk import conf

    return conf.getfloat("kie", "callback_safety_net_interval", fallback=SAFETY_NET_INTERVAL)


class HintReader:
    """One per event loop and connection: lists the hints while any trigger waits, and wakes the waiters
    whose task is named (see the module's docstring)."""

    def __init__(self, list_keys: Callable[[], frozenset[str]] = _list_hint_keys) -> None:
        self.list_keys = list_keys
        self.present: frozenset[str] = frozenset()
        self.waiting: dict[str, set[asyncio.Future[None]]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.failing = False

    async def wait(self, kie_task_id: str, timeout: float) -> bool:
        """True as soon as a hint for ``kie_task_id`` is seen, False after ``timeout`` seconds."""
        if HINT_PREFIX + kie_task_id in self.present:
            return True
        woken = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(kie_task_id, set()).add(woken)
        if self.reader is None or self.reader.done():
            self.reader = asyncio.ensure_future(self._read_while_waited())
        try:
            await asyncio.wait_for(asyncio.shield(woken), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            waiters = self.waiting.get(kie_task_id, set())
            waiters.discard(woken)
            if not waiters:
                self.waiting.pop(kie_task_id, None)

    async def _read_while_waited(self) -> None:
        while self.waiting:
            try:
                self.present = await asyncio.to_thread(self.list_keys)
                self.failing = False
            except Exception as error:  # polling goes on; say so once, not every second
                if not self.failing:
                    log.warning("Cannot list Kie callback hints (%s); polling only until it works", error)
                self.failing = True
            for kie_task_id, waiters in list(self.waiting.items()):
                if HINT_PREFIX + kie_task_id in self.present:
                    for woken in waiters:
                        if not woken.done():
                            woken.set_result(None)
            await asyncio.sleep(HINT_READ_INTERVAL)


_READERS: dict[tuple[asyncio.AbstractEventLoop, str, str, str], HintReader] = {}


def hint_reader(base_url: str, conn_id: str, api_key: str) -> HintReader:
    """The hints reader of connection ``conn_id`` (its plugin at ``base_url``) on the running event
    loop (a triggerer has one loop for all its triggers)."""
    loop = asyncio.get_running_loop()
    for closed in [key for key in _READERS if key[0].is_closed()]:
        del _READERS[closed]
    key = (loop, base_url, conn_id, api_key)
    if key not in _READERS:
        _READERS[key] = HintReader(PluginHintLister(base_url, conn_id, api_key))
    return _READERS[key]


class CallbackWait:
    """How one Kie task is waited for when its connection has ``callback_base_url``: polled as usual
    (``between_polls``) until it is known, or a read shows (its ``param.callBackUrl``), that Kie calls
    this deployment's plugin back for it. From then on a sleep ends when the task's hint is seen, and
    lasts at least ``safety_net`` seconds and long enough that the process's safety-net polls stay within
    :data:`SAFETY_NET_READS_PER_SECOND` (never past the deadline); after the hint, at most
    :data:`AFTER_HINT_INTERVAL`. Pass :meth:`observe` and :meth:`sleep` to ``wait_async``."""

    def __init__(
        self,
        hints: HintReader,
        job: JobRef,
        safety_net: float,
        base_url: str,
        log: Any,
        *,
        awaited: bool,
        between_polls: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.hints = hints
        self.job = job
        self.safety_net = safety_net
        self.base_url = base_url
        self.log = log  # None: the caller says it once for many tasks
        self.between_polls = between_polls
        self.awaited = self.hint_seen = False
        if awaited:
            self._await()

    def observe(self, outcome: Any) -> None:
        if not self.awaited and calls_back(getattr(outcome, "param", None), self.base_url):
            self._await()

    async def sleep(self, delay: float) -> None:
        if not self.awaited:
            await self.between_polls(delay)
        elif self.hint_seen:
            await asyncio.sleep(min(delay, AFTER_HINT_INTERVAL))
        else:
            spread = (len(self.hints.waiting) + 1) / SAFETY_NET_READS_PER_SECOND * random.uniform(0.8, 1.2)
            timeout = min(max(delay, self.safety_net, spread), max(delay, self.job.deadline - time.time()))
            self.hint_seen = await self.hints.wait(self.job.kie_task_id, timeout)

    def _await(self) -> None:
        self.awaited = True
        if self.log is not None:
            self.log.info(
                "Kie task %s: waiting for Kie's callback (polling every %.0f s or more meanwhile, in case "
                "it is lost)",
                self.job.kie_task_id,
                self.safety_net,
            )


@dataclass(frozen=True)
class Callbacks:
    """One per trigger: its connection's hint reader and settings, from which each of its Kie tasks gets
    a :class:`CallbackWait` (see :func:`callbacks_for`)."""

    hints: HintReader
    base_url: str
    safety_net: float

    def wait_for(
        self,
        job: JobRef,
        log: Any,
        *,
        awaited: bool,
        between_polls: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> CallbackWait:
        return CallbackWait(
            self.hints, job, self.safety_net, self.base_url, log, awaited=awaited, between_polls=between_polls
        )


async def callbacks_for(hook: Any, conn_id: str, task_instance: Any) -> Callbacks | None:
    """How a trigger of connection ``conn_id`` waits for callbacks, or None where it cannot: the
    connection has no ``callback_base_url``, no task instance (``airflow dags test``), or Airflow
    before 3.3."""
    settings = await hook.get_settings()
    base_url = settings.callback_base_url
    if base_url is None or task_instance is None or not trigger_lists_variables():
        return None
    return Callbacks(hint_reader(base_url, conn_id, settings.api_key), base_url, safety_net_interval())
