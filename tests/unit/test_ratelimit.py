"""The process-wide limiter: never more than N calls in any window, shared by every hook of a key."""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_kie.hooks import ratelimit as limits
from airflow_provider_kie.hooks.ratelimit import SlidingWindowLimiter


def test_first_calls_are_free_then_spaced():
    limiter = SlidingWindowLimiter(3, 1.0)
    delays = [limiter.reserve() for _ in range(7)]
    assert delays[:3] == [0, 0, 0]
    assert all(1.0 <= d <= 1.1 for d in delays[3:6]) and 2.0 <= delays[6] <= 2.2


def test_no_window_ever_holds_more_than_the_limit():
    limiter = SlidingWindowLimiter(10, 1.0)
    start = time.monotonic()
    slots = sorted(start + limiter.reserve() for _ in range(95))
    for i in range(len(slots) - 10):
        assert slots[i + 10] - slots[i] >= 1.0


def test_a_call_counts_from_its_reply_so_a_late_send_delays_the_calls_after_it(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    limiter = SlidingWindowLimiter(2, 1.0)
    window = 1.0 + limits.SLACK_SECONDS
    assert [limiter.reserve() for _ in range(3)] == pytest.approx([0, 0, window])
    clock[0] += 0.5  # a busy loop: the first two leave half a second late
    assert limiter.confirm_send() == 0 and limiter.confirm_send() == 0
    clock[0] += 0.25  # their replies arrive
    limiter.landed()
    limiter.landed()
    clock[0] = 100.0 + window  # the third is on time, but its window still holds both replies
    assert limiter.confirm_send() == pytest.approx(0.75)
    clock[0] += 0.75
    assert limiter.confirm_send() == 0


def test_calls_in_flight_fill_the_window_until_their_replies_arrive(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    limiter = SlidingWindowLimiter(2, 1.0)
    assert limiter.confirm_send() == 0 and limiter.confirm_send() == 0
    clock[0] += 5.0  # far past the window, but both are still in flight: Kie may count them any moment
    assert limiter.confirm_send() == limits.IN_FLIGHT_RECHECK_SECONDS
    limiter.landed()
    assert limiter.confirm_send() == pytest.approx(1.0 + limits.SLACK_SECONDS)  # a window after that reply
    clock[0] += 1.0 + limits.SLACK_SECONDS
    assert limiter.confirm_send() == 0


async def test_coroutines_share_it():
    limiter = SlidingWindowLimiter(5, 0.2)
    sent = []

    async def call():
        for delay in limiter.waits():
            await asyncio.sleep(delay)
        sent.append(time.monotonic())
        limiter.landed()

    await asyncio.gather(*(call() for _ in range(15)))
    sent.sort()
    assert sent[-1] - sent[0] >= 0.4  # three windows of five


def test_one_limiter_per_key_and_kind():
    configured = dict(limits.DEFAULT_LIMITS)
    a = limits.limiter_for("https://api.kie.ai", "key-1", "createTask", configured)
    assert limits.limiter_for("https://api.kie.ai", "key-1", "createTask", configured) is a
    assert limits.limiter_for("https://api.kie.ai", "key-2", "createTask", configured) is not a
    assert limits.limiter_for("https://api.kie.ai", "key-1", "recordInfo", configured) is not a
    assert limits.limiter_for("https://api.kie.ai", "key-1", "createTask", {}) is None
    assert (a.limit, round(a.window - limits.SLACK_SECONDS, 3)) == (20, 10.0)


@pytest.mark.parametrize("value", [[1, 2], {"createTask": 5}, {"recordInfo": [0, 1]}, {"other": [1, 1]}])
def test_bad_rate_limits_extra(value):
    from airflow_provider_kie.exceptions import KieInputError
    from airflow_provider_kie.hooks.kie import KieConnectionSettings

    class Conn:
        conn_id, password, host, schema, port = "c", "k", None, None, None
        extra_dejson = {"rate_limits": value}

    with pytest.raises(KieInputError, match="rate_limits"):
        KieConnectionSettings.from_connection(Conn)
