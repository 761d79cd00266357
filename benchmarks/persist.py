"""Persist benchmark: results copied to ``output_path`` by KieJobsTriggers in one asyncio loop (as the
triggerer runs them) while many other triggers wait on the same loop, against the emulator in another
process; compared, in the same run, with a plain ``cp`` of the same bytes on the same machine (a copy
from the local disk) and with ``curl`` downloading them from the same emulator (the same source).

Three variants: ``ours`` (the trigger's copy: the download on the loop, asynchronous; file operations in
threads; four copies at a time), ``no_copy`` (the same triggers ending without a copy: the lag the loop
shows anyway, from garbage collection among others) and ``on_loop`` (a trigger that downloads and writes
inline, blocking the loop: what the lag probe catches).

    .venv/bin/python benchmarks/persist.py --results 100 --result-mb 20 --waiting 1000 \
        --out benchmarks/results/persist.json
    .venv/bin/python benchmarks/persist.py --kind video --results 1 --result-mb 500 --waiting 1000 \
        --variants ours,no_copy --out benchmarks/results/persist-video-500mb.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from airflow_provider_kie.testing import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
import waiting as waiting_benchmark  # the sibling benchmark: its emulator start and task creation

HERE = Path(__file__).resolve().parent
KEY = waiting_benchmark.KEY
PROBE_INTERVAL = 0.02


# What each kind of result is made by, and the extension the emulator serves it under.
KINDS = {
    "image": (waiting_benchmark.EDIT_BODY, "png"),
    "video": (
        {"model": "kling-2.6/text-to-video",
         "input": {"prompt": "p", "sound": False, "aspect_ratio": "16:9", "duration": "5"}},
        "mp4",
    ),
}  # fmt: skip


def create_tasks(url: str, n: int, generating: float, kind: str = "image") -> list[str]:
    config = {"generating_seconds": generating, "generating_factors": {"image": 1.0, "video": 1.0}}
    requests.post(f"{url}/_emulator/config", json=config).raise_for_status()
    return waiting_benchmark.create_tasks(url, n, KINDS[kind][0])


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakRss(threading.Thread):
    """Samples this process's resident memory every 10 ms; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_bytes()
        self.running = True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.01)


# --------------------------------------------------------------------------- the child: one triggerer loop


def run_loop(
    variant: str, url: str, waiting_ids: list[str], copy_ids: list[str], folder: str
) -> dict[str, Any]:
    # This process stands in for a trigger runner: loading the runner's module first makes the
    # provider do here what it does there (freeze the heap when the first Kie trigger loads).
    import airflow.jobs.triggerer_job_runner  # noqa: F401

    from airflow_provider_kie import storage
    from airflow_provider_kie.connection import connection_json
    from airflow_provider_kie.hooks.sessions import close_shared_async_sessions
    from airflow_provider_kie.triggers.jobs import KieJobsTrigger

    os.environ["AIRFLOW_CONN_KIE_DEFAULT"] = connection_json(KEY, url)
    spans: list[tuple[float, float]] = []
    copy = storage._persist  # the copy both persist() and persist_async() run

    async def timed_copy(*args: Any, **kwargs: Any) -> list[str]:
        started = time.monotonic()
        try:
            return await copy(*args, **kwargs)
        finally:
            spans.append((started, time.monotonic()))

    storage._persist = timed_copy  # type: ignore[assignment]
    if variant == "on_loop":  # a trigger that downloads and writes inline, on the loop

        async def persist_on_loop(task: Any, output_path: str, provenance: Any = None) -> list[str]:
            started, stored = time.monotonic(), []
            for n, url in enumerate(task.result_urls):
                target = (
                    Path(output_path.removeprefix("file://")) / f"{task.kie_task_id}-{n}{Path(url).suffix}"
                )
                target.parent.mkdir(parents=True, exist_ok=True)
                with requests.get(url, stream=True, timeout=60) as response, open(target, "wb") as handle:
                    for chunk in response.iter_content(storage.CHUNK_BYTES):
                        handle.write(chunk)
                stored.append(f"file://{target}")
            spans.append((started, time.monotonic()))
            return stored

        storage.persist_async = persist_on_loop  # type: ignore[assignment]

    deadline = time.time() + 3600
    lags: list[float] = []
    gc_pauses: list[float] = []
    gc_started = [0.0]

    def note_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = time.monotonic()
        elif info.get("generation") == 2:
            gc_pauses.append(time.monotonic() - gc_started[0])

    gc.callbacks.append(note_gc)

    async def probe(stop: asyncio.Event) -> None:
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(PROBE_INTERVAL)
            lags.append(time.monotonic() - before - PROBE_INTERVAL)

    async def first_event(trigger: KieJobsTrigger) -> dict[str, Any]:
        async for event in trigger.run():
            (outcome,) = event.payload["outcomes"]
            return outcome
        raise AssertionError("no event")

    async def main() -> dict[str, Any]:
        stop = asyncio.Event()
        prober = asyncio.create_task(probe(stop))
        waiters = [
            asyncio.create_task(first_event(KieJobsTrigger.waiting_for(t, deadline))) for t in waiting_ids
        ]
        await asyncio.sleep(5)  # every waiter has polled once and settled into its back-off
        lags.clear()
        gc_pauses.clear()
        rss = PeakRss()
        baseline = rss_bytes()
        rss.start()
        started = time.monotonic()
        store: str | None = f"file://{folder}"
        if variant == "no_copy":  # the same triggers ending without a copy: the loop's own lag
            store = None
        events = await asyncio.gather(
            *(first_event(KieJobsTrigger.waiting_for(t, deadline, output_path=store)) for t in copy_ids)
        )
        wall = time.monotonic() - started
        rss.running = False
        stop.set()
        await prober
        still_waiting = sum(not w.done() for w in waiters)
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        await close_shared_async_sessions()
        return {
            "events_ok": sum(e["status"] == "success" and (store is None or e["stored"]) for e in events),
            "waiters_still_waiting": still_waiting,
            "wall_seconds": wall,
            "copy_phase_seconds": max(end for _, end in spans) - min(start for start, _ in spans)
            if spans
            else None,
            "copy_busy_seconds": busy_seconds(spans) if spans else None,
            "max_loop_lag_s": max(lags),
            "p99_loop_lag_s": sorted(lags)[int(len(lags) * 0.99)],
            "loop_lags_over_0_1_s": sum(lag > 0.1 for lag in lags),
            "full_gc_pauses": len(gc_pauses),
            "max_full_gc_pause_s": max(gc_pauses, default=0.0),
            "heap_objects_frozen": gc.get_freeze_count(),
            "rss_growth_mb": (rss.peak - baseline) / 2**20,
        }

    return asyncio.run(main(), debug=bool(os.environ.get("KIE_BENCH_ASYNCIO_DEBUG")))


def busy_seconds(spans: list[tuple[float, float]]) -> float:
    """How long at least one copy was running: copies start when their task is seen done, and the
    recordInfo rate limit spreads that out; the copy's speed is the bytes over this time."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


# --------------------------------------------------------------------------- the parent


def plain_cp(source: Path, target: Path) -> float:
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["sync"], check=True)
    started = time.monotonic()
    subprocess.run(["cp", "-r", str(source), str(target)], check=True)
    return time.monotonic() - started


def plain_curl(urls: list[str], target: Path) -> float:
    """curl downloading the same results from the same emulator, as many at a time as our copy."""
    from airflow_provider_kie.storage import TRIGGERER_COPIES

    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    outputs = [arg for i, url in enumerate(urls) for arg in ("-o", str(target / f"{i}.png"), url)]
    started = time.monotonic()
    subprocess.run(
        [
            "curl",
            "-sf",
            "--no-progress-meter",
            "--parallel",
            "--parallel-max",
            str(TRIGGERER_COPIES),
            *outputs,
        ],
        check=True,
    )
    elapsed = time.monotonic() - started
    shutil.rmtree(target)
    return elapsed


def measure(
    variant: str, results: int, result_bytes: int, waiting: int, scratch: Path, kind: str = "image"
) -> dict[str, Any]:
    port = free_port()
    config = {"waiting_seconds": 0, "null_seconds": 0, "credits": 10**9, "result_bytes": result_bytes}
    emulator = waiting_benchmark.start_emulator(port, config)
    url = f"http://127.0.0.1:{port}"
    folder = scratch / f"out-{variant}"
    try:
        waiting_ids = create_tasks(url, waiting, generating=3600)
        copy_ids = create_tasks(url, results, generating=0, kind=kind)
        extension = KINDS[kind][1]
        for task_id in copy_ids:  # the emulator makes each result image once; a file host serves stored files
            with requests.get(f"{url}/files/results/{task_id}.{extension}", stream=True, timeout=60) as reply:
                reply.raise_for_status()
                for _ in reply.iter_content(1 << 20):
                    pass
        subprocess.run(["sync"], check=True)
        child = subprocess.run(
            [sys.executable, __file__, "--child", variant, "--url", url, "--folder", str(folder)],
            input=json.dumps({"waiting": waiting_ids, "copy": copy_ids}),
            capture_output=True,
            text=True,
        )
        if child.returncode:
            raise RuntimeError(f"{variant} failed:\n{child.stderr[-3000:]}")
        run = json.loads(child.stdout.strip().splitlines()[-1])
        urls = [f"{url}/files/results/{t}.{extension}" for t in copy_ids]
        run["curl_seconds"] = plain_curl(urls, scratch / "curl")
    finally:
        emulator.terminate()
        emulator.wait(10)
    total = results * result_bytes
    if variant == "no_copy":
        return {"variant": variant, "results": results, "waiting_triggers": waiting, **run}
    stored = [p for p in folder.iterdir() if p.suffix == f".{extension}"]
    assert len(stored) == results and all(p.stat().st_size == result_bytes for p in stored)
    return {
        "variant": variant,
        "kind": kind,
        "results": results,
        "result_mb": result_bytes / 2**20,
        "waiting_triggers": waiting,
        **run,
        "copy_mb_per_s": total / 2**20 / run["copy_busy_seconds"],
        "copy_throughput_vs_curl": run["curl_seconds"] / run["copy_busy_seconds"],
        "source_folder": str(folder),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=int, default=100)
    parser.add_argument("--result-mb", type=float, default=20)
    parser.add_argument("--waiting", type=int, default=1000)
    parser.add_argument("--variants", default="ours,no_copy,on_loop")
    parser.add_argument("--kind", choices=sorted(KINDS), default="image", help="what the results are")
    parser.add_argument("--out", default=str(HERE / "results" / "persist.json"))
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.child:
        ids = json.loads(sys.stdin.read())
        print(json.dumps(run_loop(args.child, args.url, ids["waiting"], ids["copy"], args.folder)))
        return
    result_bytes = int(args.result_mb * 2**20)
    scratch = Path(tempfile.mkdtemp(prefix="kie-persist-bench-"))
    try:
        report: dict[str, Any] = {}
        cp_seconds = []
        copying = [v for v in args.variants.split(",") if v != "no_copy"]
        for variant in args.variants.split(","):
            report[variant] = measure(variant, args.results, result_bytes, args.waiting, scratch, args.kind)
            if variant in copying:  # cp of the very files just stored, right after: same bytes, same disk
                cp_seconds.append(plain_cp(Path(report[variant].pop("source_folder")), scratch / "cp-target"))
        cp_rate = args.results * result_bytes / 2**20 / (sum(cp_seconds) / len(cp_seconds))
        report["plain_cp"] = {"seconds": cp_seconds, "mb_per_s": cp_rate}
        for variant in copying:
            report[variant]["copy_throughput_vs_cp"] = report[variant]["copy_mb_per_s"] / cp_rate
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    for key, value in report.items():
        print(key, value)


if __name__ == "__main__":
    main()
