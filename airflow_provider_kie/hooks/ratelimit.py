"""One rate limiter per API key and kind of call in each process, so every hook and trigger of a worker
or of the triggerer stays under Kie's limits together (docs/kie-api.md §5)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Iterator

# Kie's documented limits per API key: 20 createTask per 10 s, 10 recordInfo per s.
DEFAULT_LIMITS: dict[str, tuple[int, float]] = {"createTask": (20, 10.0), "recordInfo": (10, 1.0)}
# Sent is not received: leave a little room so the server's window never sees one too many.
SLACK_SECONDS = 0.05
# How soon to ask again when every call of the window is still in flight.
IN_FLIGHT_RECHECK_SECONDS = 0.05


class SlidingWindowLimiter:
    """At most ``limit`` calls in any ``window`` seconds. Thread-safe; callers sleep the returned delays.

    ``reserve`` books the earliest slot and returns how long to wait for it, so the same limiter
    serves threads (``time.sleep``) and coroutines (``asyncio.sleep``) without waking them to retry.
    ``confirm_send``, called when the wait is over, checks the calls actually made: each counts from
    when its reply arrived (``landed``), and as arriving now while it is in flight. Kie counts a call
    when it receives it, some time between the send and the reply, so a window measured from the
    replies never holds one too many there, however late a busy event loop or CPU sends a call.
    ``waits`` yields both in order.
    """

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"rate limit must be at least 1 call per positive window, got {limit}/{window}s")
        self.limit = limit
        self.window = window + SLACK_SECONDS
        self._slots: deque[float] = deque()
        self._landed: deque[float] = deque()  # when the replies of recent calls arrived
        self._in_flight = 0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            now = time.monotonic()
            while self._slots and self._slots[0] <= now - self.window:
                self._slots.popleft()
            at = now if len(self._slots) < self.limit else max(now, self._slots[-self.limit] + self.window)
            self._slots.append(at)
            return at - now

    def waits(self) -> Iterator[float]:
        """The sleeps before one call may leave; iterate it lazily, sleeping each before the next."""
        yield self.reserve()
        while (late := self.confirm_send()) > 0:
            yield late

    def confirm_send(self) -> float:
        """0 if a call may leave now (it is then in flight until :meth:`landed`), else how long to wait
        before asking again."""
        with self._lock:
            now = time.monotonic()
            while self._landed and self._landed[0] <= now - self.window:
                self._landed.popleft()
            excess = len(self._landed) + self._in_flight - self.limit + 1
            if excess > 0:
                if excess > len(self._landed):  # the window is full of calls in flight
                    return IN_FLIGHT_RECHECK_SECONDS
                return self._landed[excess - 1] + self.window - now
            self._in_flight += 1
            return 0.0

    def landed(self) -> None:
        """The reply of a call :meth:`confirm_send` let leave has arrived (or the call failed)."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self._landed.append(time.monotonic())


_lock = threading.Lock()
_limiters: dict[tuple[str, str, str], SlidingWindowLimiter] = {}


def limiter_for(
    base_url: str, api_key: str, kind: str, limits: dict[str, tuple[int, float]]
) -> SlidingWindowLimiter | None:
    """The process-wide limiter of this key's ``kind`` calls, or None when that kind is not limited."""
    if kind not in limits:
        return None
    limit, window = limits[kind]
    key = (base_url, fingerprint(api_key), kind)
    with _lock:
        limiter = _limiters.get(key)
        if limiter is None or (limiter.limit, limiter.window - SLACK_SECONDS) != (limit, window):
            limiter = _limiters[key] = SlidingWindowLimiter(limit, window)
        return limiter


def fingerprint(api_key: str) -> str:
    """A short hash that tells keys apart without holding them."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]
