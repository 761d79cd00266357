"""Callback hints in a triggerer: the provider's ``/kie`` plugin keeps each callback Kie sent as an
Airflow Variable (``kie_callback.<kie task id>``); one reader per triggerer process lists those keys once
a second while any of its triggers waits, and wakes the triggers whose task is named. A thousand waiting
tasks cost one request a second, not a thousand; polling goes on beside it as a slow safety net, so a
lost callback only delays a task."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from airflow_provider_kie.callbacks import HINT_PREFIX

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


def _list_hint_keys() -> frozenset[str]:
    from airflow.sdk import Variable

    return frozenset(Variable.keys(prefix=HINT_PREFIX))


def safety_net_interval() -> float:
    from airflow.providers.common.compat.sdk import conf

    return conf.getfloat("kie", "callback_safety_net_interval", fallback=SAFETY_NET_INTERVAL)


def hints_supported() -> bool:
    """Whether a trigger can list Variable keys (Airflow's Task SDK from 3.3)."""
    try:
        from airflow.sdk import Variable
    except ImportError:
        return False
    return hasattr(Variable, "keys")


class CallbackHints:
    """The hints one event loop's triggers wait for (see the module's docstring)."""

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


_BY_LOOP: dict[asyncio.AbstractEventLoop, CallbackHints] = {}


def process_hints() -> CallbackHints:
    """The hints reader of the running event loop (a triggerer has one loop for all its triggers)."""
    loop = asyncio.get_running_loop()
    for other in [other for other in _BY_LOOP if other.is_closed()]:
        del _BY_LOOP[other]
    return _BY_LOOP.setdefault(loop, CallbackHints())


class HintedSleep:
    """The sleep between polls of a task whose callback is awaited: ends early when its hint is seen,
    and lasts at least ``safety_net`` seconds and long enough that the process's safety-net polls stay
    within :data:`SAFETY_NET_READS_PER_SECOND` (never past ``deadline``); after the hint, sleeps at
    most :data:`AFTER_HINT_INTERVAL`."""

    def __init__(self, hints: CallbackHints, kie_task_id: str, deadline: float, safety_net: float) -> None:
        self.hints = hints
        self.kie_task_id = kie_task_id
        self.deadline = deadline
        self.safety_net = safety_net
        self.hinted = False

    async def __call__(self, delay: float) -> None:
        if self.hinted:
            await asyncio.sleep(min(delay, AFTER_HINT_INTERVAL))
            return
        spread = (len(self.hints.waiting) + 1) / SAFETY_NET_READS_PER_SECOND * random.uniform(0.8, 1.2)
        timeout = min(max(delay, self.safety_net, spread), max(delay, self.deadline - time.time()))
        self.hinted = await self.hints.wait(self.kie_task_id, timeout)
