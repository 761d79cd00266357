"""The ledger on an in-memory store: what a run keeps as jobs leave and come back, the election between
two runs, what a run that takes over finds, writes whose size does not grow with the number of jobs,
and what a retry starts from."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from airflow_provider_kie import ledger as ledger_module
from airflow_provider_kie.events import JobRecord, JobRef
from airflow_provider_kie.ledger import OWNER_KEY, Ledger, Superseded

log = logging.getLogger(__name__)


class Store(dict):
    """A task instance's XCom: JSON values by key; counts what each write costs."""

    def __init__(self) -> None:
        super().__init__()
        self.written_bytes = 0
        self.writes = 0

    async def load(self, key: str):
        await asyncio.sleep(0)
        return self.get(key)

    async def save(self, key: str, value) -> bool:
        encoded = json.dumps(value)
        self.written_bytes += len(encoded)
        self.writes += 1
        await asyncio.sleep(0)
        self[key] = json.loads(encoded)
        return True


@pytest.fixture(autouse=True)
def quick_election(monkeypatch):
    monkeypatch.setattr(ledger_module, "CLAIM_SETTLE_SECONDS", 0.01)


def ledger(store: Store, **kwargs) -> Ledger:
    return Ledger(store.load, store.save, log=log, **kwargs)


async def create_all(run: Ledger, size: int, *, in_flight: int = 4) -> None:
    """What a run tells its ledger: each job marked as it leaves, its id once it comes back."""
    slots = asyncio.Semaphore(in_flight)

    async def one(index: int) -> None:
        async with slots:
            await run.sending(index)
            await asyncio.sleep(0)
            await run.created(index, JobRef(f"task-{index}", 1e10))

    await asyncio.gather(*(one(index) for index in range(size)))


def test_a_run_that_takes_over_finds_every_id_and_every_create_left_without_one():
    async def main():
        store = Store()
        first = ledger(store)
        assert (await first.open()).jobs == {}
        await create_all(first, 120)
        await first.sending(120)  # left, no reply yet
        await first.sending(121)
        await first.not_sent(121)  # a 429: nothing exists
        await first.close()
        taken_over = await ledger(store).open()
        assert set(taken_over.jobs) == set(range(120)) and taken_over.jobs[7].kie_task_id == "task-7"
        assert taken_over.sent == {120}

    asyncio.run(main())


def test_record_writes_cost_the_same_per_job_whatever_their_number():
    """Writing the whole record twice per job made the bytes per job grow with the number of jobs."""

    def bytes_per_item(size: int) -> float:
        store = Store()

        async def main():
            run = ledger(store)
            await run.open()
            await create_all(run, size)
            await run.close()

        asyncio.run(main())
        return store.written_bytes / size

    small, large = bytes_per_item(100), bytes_per_item(5000)
    assert large < 1.25 * small


def test_of_two_runs_that_start_together_one_creates_and_the_other_waits_for_it():
    async def main():
        store = Store()
        first, second = ledger(store), ledger(store)
        opened = asyncio.ensure_future(asyncio.gather(first.open(), second.open()))
        await asyncio.sleep(0.2)
        # One won the election; the other waits while the winner is live.
        assert not opened.done()
        winner = first if store[OWNER_KEY]["by"] == first.by else second
        await create_all(winner, 10)
        await winner.close()
        records = await opened
        assert [set(r.jobs) for r in records] in ([set(), set(range(10))], [set(range(10)), set()])

    asyncio.run(main())


def test_a_run_whose_jobs_a_live_owner_all_created_follows_it_at_once():
    """A triggerer restarted after its single job was created: the claim of the run it killed lives on
    for a minute, but nothing is left to send, so the new run waits only for the Kie task."""

    async def main():
        store = Store()
        owner = ledger(store)
        await owner.open()
        await create_all(owner, 3)  # then its process dies: never released, still "live"
        follower = ledger(store)
        record = await asyncio.wait_for(follower.open(needed=[0, 1, 2]), timeout=5)
        assert set(record.jobs) == {0, 1, 2} and store[OWNER_KEY]["by"] == owner.by
        await follower.close()  # owns nothing: writes nothing
        assert store[OWNER_KEY]["by"] == owner.by and not store[OWNER_KEY]["released"]
        # One job not created yet: it waits for the owner as before.
        waiting = asyncio.ensure_future(ledger(store).open(needed=[3]))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await owner.close()
        assert set((await waiting).jobs) == {0, 1, 2}

    asyncio.run(main())


def test_an_owner_releases_the_jobs_once_they_all_exist_and_the_next_run_claims_nothing():
    async def main():
        store = Store()
        owner = ledger(store)
        await owner.open(needed=[0, 1])
        await create_all(owner, 2)
        assert store[OWNER_KEY]["released"] and store[OWNER_KEY]["chunks"] == 1  # before its run ends
        writes = store.writes
        record = await ledger(store).open(needed=[0, 1])  # a restart: it finds both and only waits
        assert set(record.jobs) == {0, 1} and store.writes == writes
        assert await ledger(store).open(needed=[]) == JobRecord()  # a sensor's wait reads nothing
        assert store.writes == writes

    asyncio.run(main())


def test_a_run_that_lost_the_jobs_while_paused_sends_nothing(monkeypatch):
    async def main():
        store = Store()
        paused = ledger(store)
        await paused.open()
        await paused.sending(0)
        await paused.created(0, JobRef("task-0", 1e10))
        # It stops heart-beating for longer than a claim lives; another run takes over.
        store[OWNER_KEY]["at"] -= ledger_module.CLAIM_LIVE_SECONDS + 1
        new_owner = ledger(store)
        assert set((await new_owner.open()).jobs) == {0}
        paused.confirmed -= ledger_module.heartbeat_seconds() + 1  # as a paused process finds its clock
        with pytest.raises(Superseded):
            await paused.sending(1)
        assert "1" not in store["kie_jobs.0"]["sent"]
        await paused.close()  # writes nothing over the new owner's record
        assert store[OWNER_KEY]["by"] == new_owner.by

    asyncio.run(main())


def test_a_run_stopped_while_its_mark_was_written_leaves_no_mark():
    """Paused as a create's mark was written, then cancelled on waking (its triggerer handed the jobs
    over): the create never left, so the next run must not take it for an ambiguous one."""

    async def main():
        store = Store()
        run = ledger(store)
        await run.open()
        writing = asyncio.Event()
        save = store.save

        async def slow_save(key, value):
            if key == "kie_jobs.0":
                writing.set()
                await asyncio.sleep(0.05)
            return await save(key, value)

        run.save = slow_save
        marking = asyncio.ensure_future(run.sending(3))
        await writing.wait()
        run.stop_sending()  # the run is cancelled while the mark is being written
        with pytest.raises(Superseded):
            await marking
        await run.close()
        assert (await ledger(store).open()).sent == set()

    asyncio.run(main())


def test_a_retry_starts_from_the_kept_record_a_killed_runs_marks_and_what_0_1_0_kept():
    store: dict = {}
    # A worker killed mid-run: job 0 created, job 1 marked as it left, its reply never kept.
    store[OWNER_KEY] = {"by": "run-1", "at": 1.0, "chunks": 1, "released": False}
    store["kie_jobs.0"] = {"jobs": {"0": {"kie_task_id": "t0", "deadline": 9.0}}, "sent": {"1": "run-1"}}
    record = ledger_module.retry_record(store.get)
    assert record == JobRecord({0: JobRef("t0", 9.0)}, {1})
    ledger_module.keep_for_retry(store.__setitem__, record)  # a run's end: the chunks are released
    assert ledger_module.retry_record(store.get) == record and store[OWNER_KEY]["chunks"] == 0
    assert ledger_module.retry_record({"kie_task": {"task_id": "old", "deadline": 5.0}}.get) == JobRecord(
        {0: JobRef("old", 5.0)}
    )


def test_the_kie_task_a_job_created_is_found_where_the_ledger_keeps_it():
    xcom = {"kie_jobs.1": {"jobs": {"57": {"kie_task_id": "t57", "deadline": 1.0}}, "sent": {}}}
    assert ledger_module.created_kie_task_id(xcom.get, 57) == "t57"
    assert ledger_module.created_kie_task_id(xcom.get, 58) is None
    assert ledger_module.created_kie_task_id({"kie_task_id": "single"}.get, 0) == "single"
