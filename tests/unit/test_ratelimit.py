"""The process-wide limiter: never more than N calls in any window, shared by every hook of a key."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from airflow_provider_kie.hooks import ratelimit as limits
from airflow_provider_kie.hooks.ratelimit import SlidingWindowLimiter


def test_a_window_of_calls_leaves_at_once_spread_over_a_tenth_of_it_then_a_window_later():
    limiter = SlidingWindowLimiter(3, 1.0)
    delays = [limiter.reserve() for _ in range(7)]
    spread = limiter.window * limits.BURST_SPREAD / 3
    assert delays[:3] == pytest.approx([0, spread, 2 * spread], abs=1e-3)
    later = limiter.window * (1 + 2 * limits.BURST_SPREAD)  # a window later, on the beat after
    assert all(1.0 <= d <= later for d in delays[3:6]) and 2.0 <= delays[6] <= 2.4


def test_no_window_ever_holds_more_than_the_limit():
    limiter = SlidingWindowLimiter(10, 1.0)
    start = time.monotonic()
    slots = sorted(start + limiter.reserve() for _ in range(95))
    for i in range(len(slots) - 10):
        assert slots[i + 10] - slots[i] >= 1.0


def test_a_backlog_leaves_in_bursts_on_a_beat_and_a_late_reply_delays_to_the_next_one(monkeypatch):
    """Calls woken together cost a process a fraction of calls woken one by one (docs/benchmarks.md)."""
    clock = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    limiter = SlidingWindowLimiter(10, 1.0)
    beat = limiter.window * limits.BURST_SPREAD
    slots = [clock[0] + limiter.reserve() for _ in range(60)]
    later = slots[10:]  # each window after the first: its ten calls at one or two instants
    assert len(set(later)) <= 2 * 5
    assert all(abs(s / beat - round(s / beat)) < 1e-6 for s in later)
    for i in range(len(slots) - 10):
        assert slots[i + 10] - slots[i] >= limiter.window - 1e-9
    for _ in range(10):  # a window of calls, their replies 100 ms later (a slow Kie)
        assert limiter.confirm_send() == 0
    clock[0] += 0.1
    for _ in range(10):
        limiter.landed()
    clock[0] = slots[10]  # the next window's first call: the first reply is not a window old yet
    waits = limiter.waits()
    next(waits)
    late = next(waits)
    assert late >= 100.1 + limiter.landed_window - slots[10] - 1e-9 and (
        clock[0] + late
    ) / limits.CONFIRM_BEAT == pytest.approx(round((clock[0] + late) / limits.CONFIRM_BEAT))


def test_a_call_counts_from_its_reply_so_a_late_send_delays_the_calls_after_it(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    limiter = SlidingWindowLimiter(2, 1.0)
    window = 1.0 + limits.SLACK_SECONDS
    delays = [limiter.reserve() for _ in range(3)]
    assert delays[:2] == pytest.approx([0, window * limits.BURST_SPREAD / 2])
    assert window <= delays[2] < window * (1 + limits.BURST_SPREAD)  # a backlog's call: on the beat
    clock[0] += 0.5  # a busy loop: the first two leave half a second late
    assert limiter.confirm_send() == 0 and limiter.confirm_send() == 0
    clock[0] += 0.25  # their replies arrive
    limiter.landed()
    limiter.landed()
    clock[0] = 100.0 + window  # the third is on time, but its window still holds both replies
    assert limiter.confirm_send() == pytest.approx(0.75 - limits.SLACK_SECONDS / 2)
    clock[0] = 100.75 + limiter.landed_window
    assert limiter.confirm_send() == 0


def test_calls_in_flight_fill_the_window_until_their_replies_arrive(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    limiter = SlidingWindowLimiter(2, 1.0)
    assert limiter.confirm_send() == 0 and limiter.confirm_send() == 0
    clock[0] += 5.0  # far past the window, but both are still in flight: Kie may count them any moment
    assert limiter.confirm_send() == limits.IN_FLIGHT_RECHECK_SECONDS
    limiter.landed()
    assert limiter.confirm_send() == pytest.approx(limiter.landed_window)  # a window after that reply
    clock[0] += limiter.landed_window
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
    from airflow_provider_kie.hooks.settings import KieConnectionSettings

    class Conn:
        conn_id, password, host, schema, port = "c", "k", None, None, None
        extra_dejson = {"rate_limits": value}

    with pytest.raises(KieInputError, match="rate_limits"):
        KieConnectionSettings.from_connection(Conn)


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({"rate_share": 0}, "rate_share"),
        ({"rate_share": 1.5}, "rate_share"),
        ({"rate_share": "half"}, "rate_share"),
        ({"sharing_processes": 0}, "sharing_processes"),
        ({"sharing_processes": 2.5}, "sharing_processes"),
        ({"sharing_processes": True}, "sharing_processes"),
    ],
)
def test_bad_sharing_extras_name_the_extra(extra, name):
    from airflow_provider_kie.exceptions import KieInputError
    from airflow_provider_kie.hooks.settings import KieConnectionSettings

    class Conn:
        conn_id, password, host, schema, port = "c", "k", None, None, None
        extra_dejson = extra

    with pytest.raises(KieInputError, match=name) as caught:
        KieConnectionSettings.from_connection(Conn)
    assert caught.value.parameter == name


# --------------------------------------------------------------------------- adapting to other processes


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    return now


def _call(limiter, clock, reply_after=0.1):
    """One call through the limiter: sent when it may leave, its reply ``reply_after`` later."""
    for delay in limiter.waits():
        clock[0] += delay
    sent_at = clock[0]
    clock[0] += reply_after
    limiter.landed()
    return sent_at


def test_a_429_cuts_the_rate_to_a_share_of_what_this_process_used(clock):
    limiter = SlidingWindowLimiter(20, 10.0)
    sent = [_call(limiter, clock) for _ in range(11)]  # 11 calls in the window; Kie's is full anyway
    assert limiter.throttled(sent[-1]) is True  # the 11th met the 429: Kie holds 10 of this process's
    assert limiter.limit == int(10 * limits.BACKOFF_FACTOR)
    # another call of the same crowding, sent before the cut, cuts nothing more; Kie did not keep it
    # either, so the rate the cut started from loses that call's share
    assert limiter.throttled(sent[-2]) is False
    assert limiter.rate() == pytest.approx(9 * limits.BACKOFF_FACTOR) and limiter.throttles == 1
    # a call sent after the cut that meets a 429 again cuts again
    assert limiter.throttled(_call(limiter, clock)) is True
    assert limiter.limit < int(9 * limits.BACKOFF_FACTOR)


def test_the_rate_grows_back_slowly_near_the_cut_then_probes_up_to_the_limit(clock):
    limiter = SlidingWindowLimiter(20, 10.0)
    sent = [_call(limiter, clock) for _ in range(11)]
    limiter.throttled(sent[-1])  # Kie holds 10 of its calls
    window = limiter.window
    rates = []
    for _ in range(12):
        clock[0] += window
        rates.append(limiter.rate())
    assert rates == sorted(rates)  # never shrinks without a 429
    assert 7 < rates[0] < 10 and abs(rates[1] - 10) < 1  # back near where the 429 met it within 2 windows
    assert rates[-1] == 20  # and, with no 429 since, the whole limit again


def test_a_retry_after_pauses_the_process(clock):
    limiter = SlidingWindowLimiter(20, 10.0)
    sent = [_call(limiter, clock) for _ in range(5)]
    limiter.throttled(sent[-1], retry_after=30.0)  # told 0.1 s after the send, when the reply came
    slot = limiter.window / limiter.limit
    waited = 0.0
    for delay in limiter.waits():
        clock[0] += delay
        waited += delay
    # longer than the window: Kie's word wins (and pacing adds at most one jittered gap, see below)
    assert 30.0 - 1e-6 <= waited <= 30.0 + slot * (1 + limits.PACING_JITTER)


def test_told_it_shares_the_key_a_limiter_starts_at_its_share_and_grows_if_alone(clock):
    limiter = SlidingWindowLimiter(20, 10.0, processes=4)
    assert limiter.limit == 5
    clock[0] += 40 * limiter.window
    assert limiter.limit == 20


def test_an_explicit_share_is_a_ceiling(clock):
    limiter = SlidingWindowLimiter(20, 10.0, share=0.25)
    assert limiter.limit == 5
    clock[0] += 100 * limiter.window
    assert limiter.limit == 5


def test_the_sharing_settings_reach_the_limiter():
    from airflow_provider_kie.hooks.settings import KieConnectionSettings

    class Conn:
        conn_id, password, host, schema, port = "c", "sharing-key", None, None, None
        extra_dejson = {"rate_share": 0.5, "sharing_processes": 2}

    limiter = KieConnectionSettings.from_connection(Conn).limiter("createTask")
    assert limiter.configured == (20, 10.0, 0.5, 2)
    assert limiter.limit == 5  # half of Kie's 20, then half of that to start with


def test_after_a_429_calls_are_paced_at_jittered_gaps(clock):
    limiter = SlidingWindowLimiter(20, 10.0)
    alone = [limiter.reserve() for _ in range(20)]  # alone on the key: the whole window almost at once
    assert alone[0] == 0.0 and alone[-1] < limiter.window * limits.BURST_SPREAD
    limiter = SlidingWindowLimiter(20, 10.0)
    limiter.throttled([_call(limiter, clock) for _ in range(10)][-1])
    start, limit = clock[0], limiter.limit
    slots = [start + limiter.reserve() for _ in range(100)]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert len({round(g, 6) for g in gaps}) > len(gaps) // 2  # jittered, not on a grid
    assert min(gaps) >= limiter.window / limiter.ceiling * (1 - limits.PACING_JITTER) - 1e-9
    assert all(b >= a for a, b in itertools.pairwise(slots))  # in order
    for i in range(len(slots) - 20):  # never more than Kie's limit in a window, however it grows
        assert slots[i + 20] - slots[i] >= limiter.window - 1e-9
    assert limit < 20


def test_a_process_told_it_shares_the_key_paces_from_the_start(clock):
    limiter = SlidingWindowLimiter(20, 10.0, processes=4)
    delays = [limiter.reserve() for _ in range(5)]
    assert delays[0] == 0.0 and all(b > a for a, b in itertools.pairwise(delays))
