"""What a recordInfo read costs the process when reads leave one by one, paced at Kie's 10 per second,
against the same reads leaving in bursts of 5 or 10 at the same average rate: the CPU per read of the
provider's hook and of bare aiohttp on one shared session, against the emulator in another process.
Why the key's limiter sends a backlog in bursts on a beat (hooks/ratelimit.py).

    .venv/bin/python benchmarks/paced_reads.py --reads 200 --out benchmarks/results/paced_reads.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from waiting import KEY, create_tasks, start_emulator

from airflow_provider_kie.connection import connection_json
from airflow_provider_kie.testing import free_port


async def reads(url: str, task_ids: list[str], burst: int, bare: bool) -> None:
    from airflow_provider_kie.hooks.kie import KieAsyncHook

    async def one(index: int, task_id: str, session) -> None:
        await asyncio.sleep((index // burst) * burst * 0.1)  # 10 per second on average
        if bare:
            params = {"taskId": task_id}
            headers = {"Authorization": f"Bearer {KEY}"}
            async with session.get(f"{url}/api/v1/jobs/recordInfo", params=params, headers=headers) as r:
                await r.json()
        else:
            async with KieAsyncHook() as hook:
                await hook.get_task(task_id)

    async with KieAsyncHook() as keep:
        session = await keep.get_session()
        await asyncio.gather(*(one(i, t, session) for i, t in enumerate(task_ids)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    port = free_port()
    emulator = start_emulator(port, {"waiting_seconds": 0, "generating_seconds": 0, "null_seconds": 0,
                                     "credits": 10**9, "create_limit": [1_000_000, 1]})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    # the hook's own limiter off: the pacing here is the thing measured
    os.environ["AIRFLOW_CONN_KIE_DEFAULT"] = connection_json(KEY, url, rate_limits={})
    report: dict = {"command": " ".join([".venv/bin/python", "benchmarks/paced_reads.py", *sys.argv[1:]])}
    try:
        task_ids = create_tasks(url, args.reads)
        asyncio.run(reads(url, task_ids[:20], 10, False))  # imports and connections warm
        gc.freeze()
        for burst in (1, 5, 10):
            for bare in (False, True):
                started = time.process_time()
                asyncio.run(reads(url, task_ids, burst, bare))
                ms = 1000 * (time.process_time() - started) / args.reads
                report[f"{'aiohttp' if bare else 'hook'}, bursts of {burst}"] = ms
                print(
                    f"{'aiohttp' if bare else 'hook'}, bursts of {burst}: {ms:.3f} ms CPU per read",
                    flush=True,
                )
    finally:
        emulator.terminate()
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
