"""Sharing benchmark: K processes create Kie tasks on one key against the emulator, which enforces Kie's
createTask limit (20 per 10 s per key, counted on receipt; a 429 creates nothing). Each process has its
own limiter and no state is shared between them, as for several triggerers or workers of one
deployment. Variants, side by side in one run on a fresh emulator each:

- ``adaptive``: the provider's limiter, which cuts its rate on Kie's 429s and grows it back;
- ``fixed``: the same limiter with its 429 feedback turned off (each process allows Kie's whole limit,
  the provider's limiter before the adaptive one), so K processes oversubscribe the key K times;
- ``hinted``: adaptive, with the connection extra ``sharing_processes`` = K;
- ``capped``: adaptive, with the connection extra ``rate_share`` = 1/K (each process's ceiling).

Each process runs ``--concurrency`` createTask calls at a time through one ``KieAsyncHook`` (a triggerer
with many triggers, or a worker's slots) and samples its limiter's allowed rate for the plot.

    .venv/bin/python benchmarks/sharing.py --processes 3 --creates 300 --out benchmarks/results/sharing.json

``--runs N`` repeats each variant N times (a fresh emulator each) and reports the spread: a limiter that
adapts from 429s converges differently from run to run.

    .venv/bin/python benchmarks/sharing.py --processes 3 --creates 120 --variants adaptive --runs 5 \
        --out benchmarks/results/sharing-runs.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_kie.emulator import KieEmulator  # noqa: E402

KEY = "benchmark-key"
VARIANTS = ("fixed", "adaptive", "hinted", "capped")
SAMPLE_EVERY = 0.25  # seconds between samples of a limiter's allowed rate


# --------------------------------------------------------------------------- a process sharing the key


async def create_all(creates: int, concurrency: int, variant: str, go: Path) -> dict[str, Any]:
    from airflow_provider_kie.api import CREATE_TASK
    from airflow_provider_kie.exceptions import KieRateLimitError
    from airflow_provider_kie.hooks import ratelimit
    from airflow_provider_kie.hooks.kie import KieAsyncHook
    from airflow_provider_kie.hooks.sessions import close_shared_async_sessions

    if variant == "fixed":  # today's limiter before it adapted: 429s cut nothing
        ratelimit.SlidingWindowLimiter.throttled = lambda self, sent_at, retry_after=None: False  # type: ignore[method-assign]
    seen_429 = 0
    hook = KieAsyncHook("kie_default")
    original = hook._retry_delay

    def counting(error: Any, attempts: Any) -> float:
        nonlocal seen_429
        seen_429 += isinstance(error, KieRateLimitError)
        return original(error, attempts)

    hook._retry_delay = counting  # type: ignore[method-assign]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(creates):
        queue.put_nowait(n)
    samples: list[tuple[float, float]] = []
    done_at: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            edit = {"prompt": f"edit {os.getpid()}-{n}", "image_urls": ["https://example.com/in.png"]}
            await hook.create_task("seedream/4.5-edit", edit)
            done_at.append(time.time())

    async def sample(limiter: Any) -> None:
        while True:
            samples.append((time.time(), limiter.rate()))
            await asyncio.sleep(SAMPLE_EVERY)

    settings = await hook.get_settings()
    go.with_suffix(f".ready-{os.getpid()}").touch()
    while not go.exists():  # every process starts together, as triggerers that pick up a batch do
        await asyncio.sleep(0.01)
    started = time.time()
    sampler = asyncio.create_task(sample(settings.limiter(CREATE_TASK)))
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sampler.cancel()
    limiter = settings.limiter(CREATE_TASK)
    await close_shared_async_sessions()
    return {
        "pid": os.getpid(),
        "creates": len(done_at),
        "started": started,
        "finished": max(done_at, default=started),
        "429s_seen": seen_429,
        "rate_cuts": limiter.throttles if limiter else 0,
        "samples": samples,
    }


# --------------------------------------------------------------------------- the parent


def run(variant: str, processes: int, creates: int, concurrency: int, window: float) -> dict[str, Any]:
    """One variant on a fresh emulator: ``processes`` processes create ``creates`` tasks in all."""
    with KieEmulator() as emulator, tempfile.TemporaryDirectory(prefix="kie-sharing-") as tmp:
        emulator.config.update({"rate_limits": True, "create_limit": [20, window], "credits": 10**9})
        extra: dict[str, Any] = {"rate_limits": {"createTask": [20, window], "recordInfo": [10, 1]}}
        if variant == "hinted":
            extra["sharing_processes"] = processes
        if variant == "capped":
            extra["rate_share"] = 1 / processes
        conn = json.loads(emulator.connection_uri(KEY))
        conn["extra"] = {**conn.get("extra", {}), **extra}
        env = {**os.environ, "AIRFLOW_CONN_KIE_DEFAULT": json.dumps(conn), "PYTHONPATH": str(ROOT)}
        share = [creates // processes + (i < creates % processes) for i in range(processes)]
        outs = [Path(tmp) / f"process-{i}.json" for i in range(processes)]
        go = Path(tmp) / "go"
        child_args = ["--child", variant, "--concurrency", str(concurrency), "--go", str(go)]
        children = [
            subprocess.Popen(
                [sys.executable, __file__, *child_args, "--creates", str(n), "--out", str(out)], env=env
            )
            for n, out in zip(share, outs, strict=True)
        ]
        while len(list(Path(tmp).glob("go.ready-*"))) < processes:
            if any(child.poll() is not None for child in children):
                raise RuntimeError(f"a {variant} process ended before it was ready")
            time.sleep(0.05)
        go.touch()
        for child in children:
            if child.wait(timeout=3600) != 0:
                raise RuntimeError(f"a {variant} process failed with exit code {child.returncode}")
        results = [json.loads(out.read_text()) for out in outs]
        create_requests = [r for r in emulator.state.requests if r.endpoint == "createTask"]
        throttled = sum(r.code == 429 for r in create_requests)
        first = min(r["started"] for r in results)
        makespan = max(r["finished"] for r in results) - first
        bound = creates / (20 / window)
        return {
            "variant": variant,
            "processes": processes,
            "creates": creates,
            "concurrency_per_process": concurrency,
            "window_seconds": window,
            "kie_tasks_created": len(emulator.state.tasks),
            "duplicate_creates": len(emulator.state.tasks) - creates,
            "createTask_requests": len(create_requests),
            "createTask_429s": throttled,
            "createTask_429_share": throttled / max(1, len(create_requests)),
            "makespan_seconds": makespan,
            "rate_limit_bound_seconds": bound,
            "makespan_over_bound": makespan / bound,
            "per_process": [
                {
                    "creates": r["creates"],
                    "429s_seen": r["429s_seen"],
                    "rate_cuts": r["rate_cuts"],
                    "allowed_rate": [(round(t - first, 2), round(rate, 2)) for t, rate in r["samples"]],
                }
                for r in results
            ],
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16, help="createTask calls at a time per process")
    parser.add_argument(
        "--window", type=float, default=10.0, help="Kie's createTask window (20 calls per it)"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--runs", type=int, default=1, help="runs of each variant, to see their spread")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--go", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(create_all(args.creates, args.concurrency, args.child, args.go))
        args.out.write_text(json.dumps(result))
        return
    command = " ".join([".venv/bin/python", "benchmarks/sharing.py", *sys.argv[1:]])
    report: dict[str, Any] = {"command": command, "variants": {}, "runs": {}, "spread": {}}
    for variant in args.variants.split(","):
        runs = report["runs"][variant] = []
        for _ in range(args.runs):
            runs.append(run(variant, args.processes, args.creates, args.concurrency, args.window))
            summary = {k: v for k, v in runs[-1].items() if k != "per_process"}
            print(json.dumps(summary), flush=True)
        report["variants"][variant] = runs[0]
        report["spread"][variant] = {
            key: {
                "min": min(r[key] for r in runs),
                "median": statistics.median(r[key] for r in runs),
                "max": max(r[key] for r in runs),
            }
            for key in ("makespan_over_bound", "createTask_429_share")
        }
        print(json.dumps({"variant": variant, "spread": report["spread"][variant]}), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
