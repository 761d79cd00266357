"""A virtual-time model of K processes sharing one Kie key: the provider's own limiter and retry policy,
Kie's createTask window (20 per 10 s, counted on receipt, a 429 takes no place), and clients that send
``--concurrency`` creates at a time each. No sockets, no sleeping: a 300-create run takes a fraction of
a second, so the limiter's constants are compared over many seeds and shapes here, and then checked in
real processes by benchmarks/sharing.py and benchmarks/distributed.py.

    .venv/bin/python benchmarks/sharing_model.py --seeds 5
"""

from __future__ import annotations

import argparse
import asyncio
import random
import selectors
import statistics
import sys
import types
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airflow_provider_kie.hooks import ratelimit
from airflow_provider_kie.hooks.kie import RetryPolicy

# Shapes: (label, processes, creates in all, concurrency per process, seconds between process starts,
# each process's part of the creates (None: equal parts)). Airflow's triggerers each take up to their
# capacity of unassigned triggers at once, so one of three HA triggerers often holds most of a batch.
SHAPES = (
    ("3 processes, 40 creates each", 3, 120, 16, 0.0, None),
    ("3 processes, 16 at a time", 3, 300, 16, 0.0, None),
    ("3 processes, 100 at a time (triggerers)", 3, 300, 100, 0.0, None),
    ("3 triggerers, 90/5/5 % of the batch", 3, 300, 300, 0.0, (0.9, 0.05, 0.05)),
    ("2 processes", 2, 200, 16, 0.0, None),
    ("5 processes", 5, 500, 16, 0.0, None),
    ("3 processes starting 20 s apart", 3, 300, 16, 20.0, None),
    ("1 process", 1, 100, 16, 0.0, None),
)
LATENCY = 0.03  # seconds from send to reply; Kie counts the call halfway


class _Clock:
    now = 1000.0


def _virtual_loop(clock: _Clock) -> asyncio.AbstractEventLoop:
    class Selector(selectors.DefaultSelector):
        def select(self, timeout=None):  # nothing to wait for but timers: jump to the next one
            if timeout:
                clock.now += timeout
            return []

    class Loop(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return clock.now

    return Loop(Selector())


def simulate(
    processes: int,
    creates: int,
    concurrency: int,
    stagger: float,
    variant: str,
    seed: int,
    parts: tuple[float, ...] | None = None,
):
    """(share of createTask requests answered 429, makespan / bound) of one run."""
    random.seed(seed)
    clock = _Clock()
    real_time = ratelimit.time
    ratelimit.time = types.SimpleNamespace(monotonic=lambda: clock.now)  # type: ignore[assignment]
    window_of_kie: deque[float] = deque()
    counts = {"requests": 0, "429s": 0}
    policy = RetryPolicy()

    async def process(index: int, count: int) -> float:
        limiter = ratelimit.SlidingWindowLimiter(20, 10.0, processes=processes if variant == "hinted" else 1)
        if variant == "fixed":
            limiter.throttled = lambda *_, **__: False  # type: ignore[method-assign]
        await asyncio.sleep(stagger * index)
        queue, ends = list(range(count)), []

        async def client() -> None:
            while queue:
                queue.pop()
                attempt = 0
                while True:
                    attempt += 1
                    for delay in limiter.waits():
                        await asyncio.sleep(delay)
                    sent = clock.now
                    await asyncio.sleep(LATENCY / 2)
                    while window_of_kie and window_of_kie[0] <= clock.now - 10.0:
                        window_of_kie.popleft()
                    counts["requests"] += 1
                    accepted = len(window_of_kie) < 20
                    if accepted:
                        window_of_kie.append(clock.now)
                    await asyncio.sleep(LATENCY / 2)
                    limiter.landed()
                    if accepted:
                        break
                    counts["429s"] += 1
                    limiter.throttled(sent)
                    await asyncio.sleep(policy.delay(min(attempt, policy.max_attempts)))
                ends.append(clock.now)

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return max(ends)

    async def everyone() -> float:
        start = clock.now
        if parts:
            shares = [round(creates * part) for part in parts]
        else:
            shares = [creates // processes + (i < creates % processes) for i in range(processes)]
        return max(await asyncio.gather(*(process(i, n) for i, n in enumerate(shares)))) - start

    loop = _virtual_loop(clock)
    try:
        makespan = loop.run_until_complete(everyone())
    finally:
        loop.close()
        ratelimit.time = real_time  # type: ignore[assignment]
    return counts["429s"] / counts["requests"], makespan / (creates / 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--variants", default="fixed,adaptive,hinted")
    parser.add_argument("--shapes", help="the labels of the shapes to run, separated by ; (default: all)")
    args = parser.parse_args()
    shapes = [s for s in SHAPES if not args.shapes or s[0] in args.shapes.split(";")]
    print(f"429s / requests and makespan / bound (creates / 2 per s), mean [max] of {args.seeds} seeds")
    for label, processes, creates, concurrency, stagger, parts in shapes:
        cells = []
        for variant in args.variants.split(","):
            runs = [
                simulate(processes, creates, concurrency, stagger, variant, s, parts)
                for s in range(args.seeds)
            ]
            shares, spans = [r[0] for r in runs], [r[1] for r in runs]
            cells.append(
                f"{variant} {statistics.mean(shares):.1%} [{max(shares):.1%}], "
                f"{statistics.mean(spans):.2f} [{max(spans):.2f}]"
            )
        print(f"{label}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
