"""What a batch's record costs to keep, per item, as the batch grows: the bytes and writes the real
``BatchLedger`` sends to its store (XCom in a triggerer) while every item is marked sent and then
created, four creates in flight as in a batch run, next to what the record kept whole cost before the
ledger (the whole record written before each send and after each reply).

    .venv/bin/python benchmarks/ledger_writes.py --sizes 100,1000,10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from airflow_provider_kie import ledger  # noqa: E402
from airflow_provider_kie.events import JobRecord, JobRef  # noqa: E402
from airflow_provider_kie.jobs import CREATES_IN_FLIGHT as IN_FLIGHT  # noqa: E402
from airflow_provider_kie.ledger import Ledger  # noqa: E402


class CountingStore(dict):
    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.writes = 0

    async def load(self, key: str):
        await asyncio.sleep(0)
        return self.get(key)

    async def save(self, key: str, value) -> bool:
        encoded = json.dumps(value)
        self.bytes += len(encoded)
        self.writes += 1
        await asyncio.sleep(0)  # another item's change may come while a write is in flight
        self[key] = json.loads(encoded)
        return True


async def with_ledger(size: int) -> CountingStore:
    store = CountingStore()
    run = Ledger(store.load, store.save, log=logging.getLogger("bench"))
    await run.open()
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(index: int) -> None:
        async with slots:
            await run.sending(index)
            await asyncio.sleep(0)
            await run.created(index, JobRef(f"{index:032x}", 1.8e9))

    await asyncio.gather(*(one(index) for index in range(size)))
    await run.close()
    return store


async def whole_record(size: int) -> CountingStore:
    """Before the ledger: the whole record saved before each send and after each reply."""
    store = CountingStore()
    record = JobRecord()
    for index in range(size):
        record.sent.add(index)
        await store.save(ledger.RECORD_KEY, record.to_dict())
        record.jobs[index] = JobRef(f"{index:032x}", 1.8e9)
        await store.save(ledger.RECORD_KEY, record.to_dict())
    return store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--out", default=str(HERE / "results" / "ledger_writes.json"))
    args = parser.parse_args()
    ledger.CLAIM_SETTLE_SECONDS = 0.0  # the election's wait is not what is measured
    report: dict = {"command": " ".join([".venv/bin/python", "benchmarks/ledger_writes.py", *sys.argv[1:]])}
    for size in (int(s) for s in args.sizes.split(",")):
        for name, keep in (("ledger", with_ledger), ("whole_record", whole_record)):
            if name == "whole_record" and size > 2000:  # quadratic: 10,000 items would write ~16 GB
                continue
            store = asyncio.run(keep(size))
            report[f"{name}_{size}"] = {
                "items": size,
                "bytes_per_item": store.bytes / size,
                "writes_per_item": store.writes / size,
            }
            print(name, size, report[f"{name}_{size}"], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
