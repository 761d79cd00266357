"""Waiting benchmark: N concurrent triggers in one asyncio loop (as the triggerer runs them) against the
emulator in another process, with Kie's per-key limits enforced by the emulator.

Compares KieJobsTrigger (waiting for one task each, as a sensor's) with the peer a user would build today from apache-airflow-providers-http:
HttpSensorTrigger's loop (a new aiohttp session per poll, fixed poke interval) with a check of the
task's state added, since HttpSensorTrigger alone fires on any non-404 reply and Kie answers 200.

    .venv/bin/python benchmarks/waiting.py --tasks 1000 --generating 60 --out benchmarks/results/waiting.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from airflow_provider_kie.testing import free_port

HERE = Path(__file__).resolve().parent
KEY = "benchmark-key"


def start_emulator(port: int, config: dict[str, Any]) -> subprocess.Popen:
    """The emulator in a process of its own (not sharing the measured loop), with ``config``."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_kie.emulator",
            "--port",
            str(port),
            "--config",
            json.dumps(config),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and "listening" in process.stdout.readline()
    return process


EDIT_BODY = {"model": "seedream/4.5-edit", "input": {"prompt": "p", "image_urls": ["https://a/b.png"],
             "aspect_ratio": "1:1", "quality": "basic"}}  # fmt: skip


def create_tasks(url: str, n: int, body: dict[str, Any] = EDIT_BODY) -> list[str]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {KEY}"
    return [
        session.post(f"{url}/api/v1/jobs/createTask", json=body).json()["data"]["taskId"] for _ in range(n)
    ]


# --------------------------------------------------------------------------- the two waiters


async def wait_ours(task_id: str, deadline: float) -> dict[str, Any]:
    from airflow_provider_kie.triggers.jobs import KieJobsTrigger

    async for event in KieJobsTrigger.waiting_for(task_id, deadline).run():
        return {"status": event.payload["outcomes"][0]["state"], "at": time.time()}
    raise AssertionError


async def peer_poke(hook: Any, task_id: str) -> str | None:
    """The task's state, read as HttpSensorTrigger pokes (a new aiohttp session each time) plus the
    state check it lacks."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        response = await hook.run(
            session=session,
            endpoint=f"api/v1/jobs/recordInfo?taskId={task_id}",
            headers={"Authorization": f"Bearer {KEY}"},
        )
        body = await response.json()
    return (body.get("data") or {}).get("state")


async def wait_peer(task_id: str, deadline: float, poke_interval: float = 5.0) -> dict[str, Any]:
    from airflow.providers.http.hooks.http import HttpAsyncHook

    hook = HttpAsyncHook(method="GET", http_conn_id="kie_http")
    while time.time() < deadline:
        state = await peer_poke(hook, task_id)
        if state in ("success", "fail"):
            return {"status": state, "at": time.time()}
        await asyncio.sleep(poke_interval)
    return {"status": "timeout", "at": time.time()}


def run_waiters(kind: str, url: str, task_ids: list[str], timeout: float) -> dict[str, Any]:
    from airflow_provider_kie.connection import connection_json

    os.environ["AIRFLOW_CONN_KIE_DEFAULT"] = connection_json(KEY, url)
    os.environ["AIRFLOW_CONN_KIE_HTTP"] = json.dumps({"conn_type": "http", "host": url})
    waiter = wait_ours if kind == "ours" else wait_peer
    # Imports and Airflow's start-up are not waiting: load them before measuring.
    import aiohttp  # noqa: F401
    from airflow.providers.http.hooks.http import HttpAsyncHook  # noqa: F401

    from airflow_provider_kie.triggers.jobs import KieJobsTrigger  # noqa: F401

    # A triggerer running Kie triggers has its heap frozen (triggers/heap.py) as the first one starts;
    # frozen here for both waiters, so neither pays full collections walking Airflow's own objects.
    gc.freeze()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu_before = time.process_time()
    started = time.time()

    async def main() -> list[dict[str, Any]]:
        results = await asyncio.gather(*(waiter(t, started + timeout) for t in task_ids))
        if kind == "ours":
            from airflow_provider_kie.hooks.sessions import close_shared_async_sessions

            await close_shared_async_sessions()
        return results

    results = asyncio.run(main())
    return {
        "cpu_seconds": time.process_time() - cpu_before,
        "rss_growth_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before,
        "wall_seconds": time.time() - started,
        "results": results,
    }


# --------------------------------------------------------------------------- measurement


def measure(kind: str, tasks: int, generating: float, timeout: float) -> dict[str, Any]:
    port = free_port()
    config = {"waiting_seconds": 1, "generating_seconds": generating, "null_seconds": 1, "rate_limits": True, "credits": 10**9,
              "create_limit": [1_000_000, 1]}  # fmt: skip
    emulator = start_emulator(port, config)
    url = f"http://127.0.0.1:{port}"
    try:
        task_ids = create_tasks(url, tasks)
        requests.post(f"{url}/_emulator/config", json={})  # warm
        child = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--url", url, "--timeout", str(timeout)],
            input=json.dumps(task_ids),
            capture_output=True,
            text=True,
        )
        if child.returncode:
            raise RuntimeError(f"{kind} waiters failed:\n{child.stderr[-3000:]}")
        run = json.loads(child.stdout.strip().splitlines()[-1])
        log = requests.get(f"{url}/_emulator/requests").json()
        records = {t["taskId"]: t for t in requests.get(f"{url}/_emulator/tasks").json()}
    finally:
        emulator.terminate()
        emulator.wait(10)
    polls = [r for r in log if r["endpoint"] == "recordInfo"]
    per_second: dict[int, int] = {}
    for r in polls:
        if r["code"] == 200:
            per_second[int(r["at"])] = per_second.get(int(r["at"]), 0) + 1
    latencies = sorted(
        res["at"] - records[t]["completeTime"] / 1000
        for t, res in zip(task_ids, run["results"], strict=True)
        if res["status"] in ("success", "fail")
    )
    return {
        "kind": kind,
        "tasks": tasks,
        "generating_seconds": generating,
        "detected": len(latencies),
        "cpu_seconds_per_task": run["cpu_seconds"] / tasks,
        "rss_kib_per_task": run["rss_growth_kib"] / tasks,
        "recordinfo_requests_per_task": len(polls) / tasks,
        "throttled_429_per_task": sum(r["code"] == 429 for r in polls) / tasks,
        "max_accepted_recordinfo_per_second": max(per_second.values(), default=0),
        "latency_p50_s": statistics.median(latencies) if latencies else None,
        "latency_p99_s": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        if latencies
        else None,
        "wall_seconds": run["wall_seconds"],
        "poll_ages": [r["at"] for r in polls],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--generating", type=float, default=60)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", default=str(HERE / "results" / "waiting.json"))
    parser.add_argument("--child")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        task_ids = json.loads(sys.stdin.read())
        print(json.dumps(run_waiters(args.child, args.url, task_ids, args.timeout)))
        return
    report = {kind: measure(kind, args.tasks, args.generating, args.timeout) for kind in ("ours", "peer")}
    ours, peer = report["ours"], report["peer"]
    report["ratios_peer_over_ours"] = {
        "cpu_seconds_per_task": peer["cpu_seconds_per_task"] / ours["cpu_seconds_per_task"],
        "recordinfo_requests_per_task": peer["recordinfo_requests_per_task"]
        / ours["recordinfo_requests_per_task"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    for kind in ("ours", "peer"):
        print(kind, {k: v for k, v in report[kind].items() if k != "poll_ages"})
    print("peer/ours", report["ratios_peer_over_ours"])


if __name__ == "__main__":
    main()
