"""One HTTP session per Kie connection in each process (per event loop for aiohttp), shared by every
hook and trigger of a worker or of the triggerer: pooled connections, few sockets, little CPU."""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Awaitable
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")

#: A timer that fires this much later than due means the loop itself stood still (the process was
#: paused, or the loop blocked), not that the server was slow.
LOOP_STALL_SECONDS = 1.0

_lock = threading.Lock()
_sync_sessions: dict[tuple[Any, ...], Any] = {}
_async_sessions: dict[tuple[Any, ...], Any] = {}
_async_users: dict[int, int] = {}  # id(session) -> hooks using it
_aiohttp: ModuleType | None = None
_aiohttp_import: asyncio.Future[ModuleType] | None = None


async def load_aiohttp() -> ModuleType:
    """aiohttp, imported in a thread the first time: an import on the event loop would block a
    triggerer's other triggers. Every trigger a restarted triggerer starts at once awaits the same
    import, which hands each the module whole."""
    global _aiohttp, _aiohttp_import
    if _aiohttp is None:
        if _aiohttp_import is None or _aiohttp_import.get_loop() is not asyncio.get_running_loop():
            _aiohttp_import = asyncio.ensure_future(asyncio.to_thread(importlib.import_module, "aiohttp"))
        _aiohttp = await asyncio.shield(_aiohttp_import)
    return _aiohttp


def shared_sync_session(settings_key: tuple[Any, ...], factory: Any) -> Any:
    with _lock:
        session = _sync_sessions.get(settings_key)
        if session is None:
            session = _sync_sessions[settings_key] = factory()
        return session


def lease_async_session(settings_key: tuple[Any, ...], factory: Any) -> Any:
    """This event loop's session for ``settings_key`` (sessions are bound to their loop), counted as in
    use until :func:`release_async_session`: the last release closes it, so a loop that ends (a test, a
    script, ``airflow dags test``) leaves no unclosed session behind, while a triggerer's many triggers
    share one."""
    loop = asyncio.get_running_loop()
    key = (id(loop), *settings_key)
    with _lock:
        session = _async_sessions.get(key)
        if session is None or session.closed or getattr(session, "_loop", loop) is not loop:
            session = _async_sessions[key] = factory()
            _async_users[id(session)] = 0
        _async_users[id(session)] += 1
        return session


async def release_async_session(session: Any) -> None:
    with _lock:
        users = _async_users.get(id(session), 0) - 1
        last = users <= 0
        if last:
            _async_users.pop(id(session), None)
            for key in [k for k, v in _async_sessions.items() if v is session]:
                del _async_sessions[key]
        else:
            _async_users[id(session)] = users
    if last and not session.closed:
        await session.close()


async def close_shared_async_sessions() -> None:
    """Close this loop's shared sessions, leased or not (tests, benchmarks, or a clean shutdown)."""
    loop_id = id(asyncio.get_running_loop())
    with _lock:
        mine = [k for k in _async_sessions if k[0] == loop_id]
        sessions = [_async_sessions.pop(k) for k in mine]
        for session in sessions:
            _async_users.pop(id(session), None)
    for session in sessions:
        await session.close()


async def within_running_time(seconds: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result, or :class:`asyncio.TimeoutError` once it has taken ``seconds`` of time the
    loop was running. aiohttp's own timeout counts the time a paused process stood still: on waking,
    its timer fires before the reply that came meanwhile is read, so a createTask Kie answered (and
    charged for) would end as a timeout, its task id lost."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    deadline = loop.time() + seconds
    timed_out = False
    timer: asyncio.TimerHandle

    def check() -> None:  # one timer that cancels this task, as asyncio.timeout() does: no second task
        nonlocal deadline, timer, timed_out
        late = loop.time() - deadline
        if late > LOOP_STALL_SECONDS:
            deadline += late  # the stall is not the server's time
            timer = loop.call_at(deadline, check)
        else:
            timed_out = True
            task.cancel()

    timer = loop.call_at(deadline, check)
    try:
        return await awaitable
    except asyncio.CancelledError:
        # Ours, unless someone else cancelled the task too (then theirs goes on).
        if timed_out and (not hasattr(task, "uncancel") or task.uncancel() == 0):
            raise asyncio.TimeoutError() from None
        raise
    finally:
        timer.cancel()
