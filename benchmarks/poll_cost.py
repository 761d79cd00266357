"""Where a poll's CPU goes: one recordInfo read of a finished task, repeated, in one asyncio loop
against the emulator in another process (no rate limits, so only the client's work is measured).

    .venv/bin/python benchmarks/poll_cost.py --polls 1000 --rounds 3

* ``hook``: ``KieAsyncHook.get_task`` (the shared session; the reply parsed into a ``KieTask``);
* ``trigger``: a whole ``KieJobsTrigger`` per read (construction, the engine's run of one job, the event);
* ``peer``: what HttpSensorTrigger does per poke (a new aiohttp session, ``HttpAsyncHook.run``) plus the
  JSON state check it lacks.

Reads run one after another, back to back (``dense``) and ``--gap`` seconds apart (``sparse``, as a
triggerer's polls are: a read after an idle loop costs several times more CPU, whoever makes it).
CPU is ``time.process_time`` around the reads; the heap is frozen first, as a Kie triggerer's is;
kinds take turns, ``--rounds`` times, medians reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import requests
from waiting import KEY, peer_poke, start_emulator  # beside this file

from airflow_provider_kie.testing import free_port

KINDS = ("hook", "trigger", "peer")


async def poll_hook(task_id: str) -> None:
    from airflow_provider_kie.hooks.kie import KieAsyncHook

    async with KieAsyncHook() as hook:
        assert (await hook.get_task(task_id)).is_terminal


async def poll_trigger(task_id: str) -> None:
    from airflow_provider_kie.triggers.jobs import KieJobsTrigger

    async for event in KieJobsTrigger.waiting_for(task_id, time.time() + 600).run():
        assert event.payload["outcomes"][0]["status"] == "success", event.payload


async def poll_peer(task_id: str) -> None:
    from airflow.providers.http.hooks.http import HttpAsyncHook

    assert await peer_poke(HttpAsyncHook(method="GET", http_conn_id="kie_http"), task_id) == "success"


async def measure(kind: str, task_id: str, polls: int, gap: float) -> float:
    """CPU seconds per read."""
    poll = {"hook": poll_hook, "trigger": poll_trigger, "peer": poll_peer}[kind]
    await poll(task_id)  # warm: imports, the session, the connection's settings
    cpu = time.process_time()
    for _ in range(polls):
        await poll(task_id)
        if gap:
            await asyncio.sleep(gap)
    return (time.process_time() - cpu) / polls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--polls", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between sparse reads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "poll_cost.json"))
    args = parser.parse_args()

    from airflow_provider_kie.connection import connection_json

    port = free_port()
    emulator = start_emulator(port, {"waiting_seconds": 0, "generating_seconds": 0, "credits": 10**9})
    url = f"http://127.0.0.1:{port}"
    try:
        body = {"model": "seedream/4.5-edit", "input": {"prompt": "p", "image_urls": ["https://a/b.png"],
                "aspect_ratio": "1:1", "quality": "basic"}}  # fmt: skip
        task_id = requests.post(f"{url}/api/v1/jobs/createTask", json=body,
                                headers={"Authorization": f"Bearer {KEY}"}).json()["data"]["taskId"]  # fmt: skip
        time.sleep(1)
        os.environ["AIRFLOW_CONN_KIE_DEFAULT"] = connection_json(KEY, url, rate_limits={})
        os.environ["AIRFLOW_CONN_KIE_HTTP"] = json.dumps({"conn_type": "http", "host": url})
        gc.freeze()
        runs: dict[str, list[float]] = {
            f"{kind} {mode}": [] for mode in ("dense", "sparse") for kind in KINDS
        }

        async def rounds() -> None:
            for _ in range(args.rounds):
                for name in runs:
                    kind, mode = name.split()
                    polls = args.polls if mode == "dense" else max(1, args.polls // 10)
                    gap = 0.0 if mode == "dense" else args.gap
                    runs[name].append(await measure(kind, task_id, polls, gap))

        asyncio.run(rounds())
    finally:
        emulator.terminate()
        emulator.wait(10)
    report: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "benchmarks/poll_cost.py", *sys.argv[1:]]),
        "cpu_ms_per_read": {name: round(statistics.median(v) * 1000, 3) for name, v in runs.items()},
        "runs_ms": {name: [round(x * 1000, 3) for x in v] for name, v in runs.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
