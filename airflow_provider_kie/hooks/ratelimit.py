"""One rate limiter per API key and kind of call in each process, so every hook and trigger of a worker
or of the triggerer stays under Kie's limits together (docs/kie-api.md §5), and a share of them when
several processes use one key: each limiter lowers its share on Kie's 429s (docs/connection.md)."""

from __future__ import annotations

import hashlib
import math
import random
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
# After a 429 a limiter allows BACKOFF_FACTOR of the calls it made in the window that got it, then
# grows back along a cubic curve: quickly at first, flat around the rate that met the 429, and only
# then probing above it (CUBIC, as botocore's adaptive mode uses), CUBIC_GROWTH calls per window^3.
# 0.85 and 0.1 from benchmarks/sharing_model.py: three processes started together on one key finish
# 120 creates in 1.1x the bound (1.4x with 0.7 and 0.2) and meet fewer 429s in most shapes.
BACKOFF_FACTOR = 0.85
CUBIC_GROWTH = 0.1
# Paced calls leave at gaps of window / rate, each stretched or shrunk by up to this fraction.
PACING_JITTER = 0.2
# Before any 429, a window's worth of calls leaves spread over this fraction of the window.
BURST_SPREAD = 0.1
# A waiting call wakes on a beat of this many seconds: calls that would wake a few ms apart (the replies
# of one burst, each a window old) wake together, one turn of the event loop for all of them instead
# of one each (a call woken alone costs the process several times the CPU of one woken in a group).
CONFIRM_BEAT = 0.01


class SlidingWindowLimiter:
    """At most ``limit`` calls in any ``window`` seconds. Thread-safe; callers sleep the returned delays.

    ``reserve`` books the earliest slot and returns how long to wait for it, so the same limiter
    serves threads (``time.sleep``) and coroutines (``asyncio.sleep``) without waking them to retry.
    ``confirm_send``, called when the wait is over, checks the calls actually made: each counts from
    when its reply arrived (``landed``), and as arriving now while it is in flight. Kie counts a call
    when it receives it, some time between the send and the reply, so a window measured from the
    replies never holds one too many there, however late a busy event loop or CPU sends a call.
    ``waits`` yields both in order.

    The limit adapts: :meth:`throttled` (Kie's 429) cuts this process's rate to a share of what Kie
    kept of its calls, :meth:`rate` grows it back along a cubic curve, up to ``limit * share``, and from
    the first 429 on calls are paced (one per window / rate, jittered). K processes on one key, each
    cutting on the 429s it meets, stop overfilling Kie's window with nothing shared between them
    (measured in docs/benchmarks.md; tuned with benchmarks/sharing_model.py); a process alone on its
    key never meets a 429, keeps the whole limit and sends its window at once.
    """

    def __init__(self, limit: int, window: float, *, share: float = 1.0, processes: int = 1) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"rate limit must be at least 1 call per positive window, got {limit}/{window}s")
        self.configured = (limit, window, share, processes)
        self.ceiling = max(1.0, limit * share)  # this process's most: Kie's limit, or the share stated
        self.window = window + SLACK_SECONDS
        # Kie counts a call before its reply lands: a reply a window old (and a hair more, for how Kie
        # cuts its window) frees a place. Less than the slots' slack, so a backlog booked a window
        # after its slots finds the replies of the window before aged out, not a few ms short.
        self.landed_window = window + SLACK_SECONDS / 2
        self.throttles = 0  # 429s that lowered the rate
        self._slots: deque[float] = deque()
        self._landed: deque[float] = deque()  # when the replies of recent calls arrived
        self._rejected: deque[float] = deque()  # when those of them answered 429 arrived
        self._in_flight = 0
        self._lock = threading.Lock()
        self._paused_until = 0.0
        # Once Kie's 429s show another process on the key, calls leave one per window / rate, at
        # jittered gaps. A process that booked its slots when its own earlier calls leave Kie's window
        # would take each freed place first and never meet a 429, so the 429s would keep falling on
        # the processes with the smallest shares; paced, the process sending most meets most of them.
        self._paced = processes > 1
        # The rate last met by a 429, and when: the cubic grows back from there. Told it shares the
        # key with `processes - 1` others, a limiter starts on the cubic's plateau at its share.
        self._met_rate = self.ceiling / processes
        self._met_at: float | None = None
        if processes > 1:
            self._met_at = time.monotonic() - self._plateau_after() * self.window

    @property
    def limit(self) -> int:
        """The calls this process may make in a window now."""
        return max(1, int(self.rate() + 1e-9))  # 0.7 x 10 is 6.999... in floating point

    def rate(self, now: float | None = None) -> float:
        if self._met_at is None:
            return self.ceiling
        elapsed = ((time.monotonic() if now is None else now) - self._met_at) / self.window
        grown = self._met_rate + CUBIC_GROWTH * (elapsed - self._plateau_after()) ** 3
        return min(self.ceiling, max(1.0, grown))

    def _plateau_after(self) -> float:
        """Windows after a cut when the rate is back where the 429 met it (the cubic's flat point)."""
        return (self._met_rate * (1 - BACKOFF_FACTOR) / CUBIC_GROWTH) ** (1 / 3)

    def throttled(self, sent_at: float, retry_after: float | None = None) -> bool:
        """Kie answered a call sent at ``sent_at`` (monotonic) with 429: the key's window is full, so
        this process takes less of it. A 429 to a call sent before the last cut is the same crowding
        and cuts nothing more. True if the rate was cut."""
        with self._lock:
            now = time.monotonic()
            if retry_after:
                self._paused_until = max(self._paused_until, now + retry_after)
            self._rejected.append(now)
            if self._met_at is not None and sent_at < self._met_at:
                # The same crowding: no new cut; but this call was in flight at the cut, counted as
                # holding a place in Kie's window, and holds none: take its share back out.
                self._met_rate = max(1.0, self._met_rate - 1)
                return False
            self._forget(now)
            # What this process holds of Kie's window: its calls there that Kie accepted (a 429 takes
            # no place), and those in flight.
            used = max(0, len(self._landed) - len(self._rejected)) + self._in_flight
            self._met_rate = min(self.rate(now), max(1.0, float(used)))
            self._met_at = now
            self._paced = True
            self.throttles += 1
            return True

    def _forget(self, now: float) -> None:
        for stamps in (self._landed, self._rejected):
            while stamps and stamps[0] <= now - self.landed_window:
                stamps.popleft()

    def reserve(self) -> float:
        with self._lock:
            now = time.monotonic()
            while self._slots and self._slots[0] <= now - self.window:
                self._slots.popleft()
            # A lone process may use its whole window at once; a shared one paces (see __init__).
            limit = int(self.ceiling) if self._paced else self.limit
            if len(self._slots) >= limit and not self._paced:
                # A backlog, alone on the key: each window's calls leave together on a beat of
                # window * BURST_SPREAD (a window is ten beats, so slots stay on it), as one burst.
                at = _on_beat(max(now, self._slots[-limit] + self.window), self.window * BURST_SPREAD)
                self._slots.append(at)
                return at - now
            at = now if len(self._slots) < limit else max(now, self._slots[-limit] + self.window)
            if self._paced and self._slots:
                # at the rate the cubic will have reached by then: a slot booked far ahead of a low rate
                # would otherwise keep its long gap after the rate has grown back (no 429 since)
                previous = self._slots[-1]
                gap = self.window / self.rate(max(now, previous))
                at = max(at, previous + gap * random.uniform(1 - PACING_JITTER, 1 + PACING_JITTER))
            elif self._slots:
                # a whole window's calls leave over BURST_SPREAD of it, not in one instant: alone, a
                # process loses a fraction of a second; started beside others, each learns from the
                # first 429 before it has sent its whole window into a full one
                at = max(at, self._slots[-1] + self.window * BURST_SPREAD / limit)
            at = max(at, self._paused_until)
            self._slots.append(at)
            return at - now

    def waits(self) -> Iterator[float]:
        """The sleeps before one call may leave; iterate it lazily, sleeping each before the next."""
        yield self.reserve()
        while (late := self.confirm_send()) > 0:
            now = time.monotonic()
            yield _on_beat(now + late, CONFIRM_BEAT) - now

    def confirm_send(self) -> float:
        """0 if a call may leave now (it is then in flight until :meth:`landed`), else how long to wait
        before asking again."""
        with self._lock:
            now = time.monotonic()
            if now < self._paused_until:
                return self._paused_until - now
            self._forget(now)
            excess = len(self._landed) + self._in_flight - self.limit + 1
            if excess > 0:
                if excess > len(self._landed):  # the window is full of calls in flight
                    return IN_FLIGHT_RECHECK_SECONDS
                return self._landed[excess - 1] + self.landed_window - now
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
    base_url: str,
    api_key: str,
    kind: str,
    limits: dict[str, tuple[int, float]],
    *,
    share: float = 1.0,
    processes: int = 1,
) -> SlidingWindowLimiter | None:
    """The process-wide limiter of this key's ``kind`` calls, or None when that kind is not limited."""
    if kind not in limits:
        return None
    limit, window = limits[kind]
    key = (base_url, fingerprint(api_key), kind)
    with _lock:
        limiter = _limiters.get(key)
        if limiter is None or limiter.configured != (limit, window, share, processes):
            limiter = _limiters[key] = SlidingWindowLimiter(limit, window, share=share, processes=processes)
        return limiter


def _on_beat(at: float, beat: float) -> float:
    """``at``, or the next multiple of ``beat`` after it (a hair over one is taken as on it)."""
    return math.ceil(at / beat - 1e-6) * beat


def fingerprint(api_key: str) -> str:
    """A short hash that tells keys apart without holding them."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]
