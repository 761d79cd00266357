"""The batch's pure parts: its record, per-item results, the retry record, progress lines, and which
waiting items a finished one wakes."""

from __future__ import annotations

import asyncio
import time

from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.batch import (
    CREATES_IN_FLIGHT,
    FAILURES_LOGGED,
    BatchItem,
    BatchProgress,
    BatchRun,
    log_outcomes,
)
from airflow_provider_kie.events import (
    BatchEvent,
    BatchRecord,
    EventStatus,
    ItemOutcome,
    KieJobRef,
    KieTaskEvent,
)
from airflow_provider_kie.exceptions import KieAmbiguousCreateError, KieAuthError
from airflow_provider_kie.waiting import PollPolicy

BODY = {"model": "seedream/4.5-edit", "input": {"prompt": "p"}}


class Lines(list):
    def info(self, message, *args):
        self.append(message % args)

    warning = info


def test_the_record_round_trips_through_json_keys():
    record = BatchRecord({0: KieJobRef("a", 10.0), 12: KieJobRef("b", 20.0)}, {0, 12, 13})
    assert BatchRecord.from_dict(record.to_dict()) == record
    assert record.to_dict()["jobs"].keys() == {"0", "12"}  # JSON object keys are strings
    assert BatchRecord.from_dict(None) == BatchRecord()


def test_item_outcomes_say_what_a_retry_can_fix():
    job = KieJobRef("t1", 1.0)
    done = KieTask(kie_task_id="t1", state=TaskState.SUCCESS, result_urls=("https://r/1.png",))
    failed = KieTask(kie_task_id="t1", state=TaskState.FAIL, fail_code="500", fail_msg="boom")
    outcomes = [
        ItemOutcome.of(0, KieTaskEvent.finished(job, done, stored=["file:///o/t1-0.png"])),
        ItemOutcome.of(1, KieTaskEvent.finished(job, failed)),
        ItemOutcome.of(2, KieTaskEvent.errored(None, KieAmbiguousCreateError("lost"))),
        ItemOutcome.of(3, KieTaskEvent.errored(job, KieAuthError("bad key"))),
        ItemOutcome.of(4, KieTaskEvent(EventStatus.TIMEOUT, job, message="late")),
    ]
    results = BatchEvent(outcomes, BatchRecord()).return_value()
    assert results[0]["result"] == ["file:///o/t1-0.png"] and results[0]["error"] is None
    assert [r["retryable"] for r in results] == [False, True, False, False, False]
    assert results[1]["error"] == "failCode '500': boom" and results[1]["result"] == []
    assert results[2]["kie_task_id"] is None and results[4]["status"] == "timeout"
    assert [o.index for o in BatchEvent(outcomes, BatchRecord()).failed] == [1, 2, 3, 4]


def test_the_end_of_a_batch_logs_its_totals_and_the_first_failures_not_a_line_per_item():
    outcomes = [ItemOutcome(i, EventStatus.SUCCESS, f"t{i}", ("https://r/1.png",), 2.0) for i in range(500)]
    outcomes += [ItemOutcome(500 + i, EventStatus.FAILED, f"f{i}", error="boom") for i in range(80)]
    lines = Lines()
    log_outcomes(lines, outcomes)
    assert lines[0] == "Kie batch: 500 of 580 items succeeded, 1000 credits"
    assert lines[1] == "Kie batch item 500: failed, Kie task f0: boom"
    assert len(lines) == 1 + FAILURES_LOGGED + 1
    assert lines[-1] == f"Kie batch: {80 - FAILURES_LOGGED} more items did not succeed (see return_value)"


def test_the_batch_event_round_trips_and_reads_the_dicts_earlier_triggers_sent():
    outcomes = [
        ItemOutcome(0, EventStatus.SUCCESS, "a", ("https://r/1.png",), 6.0),
        ItemOutcome(1, EventStatus.FAILED, "b"),
    ]
    event = BatchEvent(outcomes, BatchRecord({0: KieJobRef("a", 1.0)}))
    assert BatchEvent.from_dict(event.to_dict()) == event
    assert set(event.to_dict()) == {"results", "record"}  # the shape earlier releases' triggers yielded


def test_a_retry_record_drops_only_what_kie_failed():
    record = BatchRecord({0: KieJobRef("a", 1.0), 1: KieJobRef("b", 1.0)}, {0, 1, 2})
    outcomes = [
        ItemOutcome(0, EventStatus.SUCCESS),
        ItemOutcome(1, EventStatus.FAILED),
        ItemOutcome(2, EventStatus.ERROR),
    ]
    assert record.for_retry(outcomes) == BatchRecord({0: KieJobRef("a", 1.0)}, {0, 2})


def test_progress_logs_phases_and_changes_at_most_every_interval():
    lines = Lines()
    progress = BatchProgress(3, lines)
    progress.begin({0: "to create", 1: "to create", 2: "to create"})
    progress.report(force=True)
    for index in range(3):
        progress.set(index, "creating")
    for index in range(3):
        progress.set(index, "waiting")  # the create phase ends: a line
    progress.set(0, "generating")  # within the interval: no line
    for index in range(3):
        progress.set(index, "success")  # done: a line
    assert lines == ["Kie batch of 3: 3 to create", "Kie batch of 3: 3 waiting", "Kie batch of 3: 3 success"]


def test_a_finished_task_wakes_the_unfinished_ones_created_before_it_or_just_after():
    items = [BatchItem(BODY) for _ in range(6)]
    created = [100.0, 101.0, 102.0, 110.0, 112.5, 113.5]  # item 5 comes over 3 s after item 3
    record = BatchRecord({i: KieJobRef(f"t{i}", at) for i, at in enumerate(created)})
    run = BatchRun(
        None, items, timeout=60, poll_policy=PollPolicy(initial_interval=3), log=Lines(), record=record
    )

    async def main():
        for index in range(6):
            run._sleeper(index)
        events = dict(run._wake)
        del run._wake[1]  # finished before: an item leaves the waiting ones as it ends
        run._polled = {index: 0.0 for index in range(6)}
        run._polled[0] = run._polled[3] = time.monotonic()  # polled a moment ago (3: its last, final read)
        run._wake_older(record.jobs[3])  # item 3 finished
        return {index: event.is_set() for index, event in events.items()}

    # 2 is older and unfinished, 4 came less than 3 s after 3: woken. 0 was just polled, 1 is done, 3 is
    # the one that finished, 5 is too new.
    assert asyncio.run(main()) == {0: False, 1: False, 2: True, 3: False, 4: True, 5: False}


def test_items_to_create_get_a_coroutine_only_when_a_create_place_frees():
    class GatedHook:  # createTask answers when the test lets it; every task has succeeded
        def __init__(self):
            self.gate = asyncio.Event()
            self.created = 0
            self.polled = set()

        async def create_task(self, model, input, callback_url, *, claim, callback_for, validate):
            await claim.sending()
            await self.gate.wait()
            self.created += 1
            return f"t{self.created}"

        async def get_task(self, kie_task_id):
            self.polled.add(kie_task_id)
            return KieTask(kie_task_id=kie_task_id, state=TaskState.SUCCESS, result_urls=("https://r/1.png",))

    # Created by an earlier try: 0 is waited for at once; 300 is of an item this try no longer has.
    kept = {0: KieJobRef("kept", time.time() + 60), 300: KieJobRef("dropped", time.time() + 60)}
    hook = GatedHook()
    run = BatchRun(
        hook,
        [BatchItem(BODY) for _ in range(300)],
        timeout=60,
        poll_policy=PollPolicy(initial_interval=0.01),
        log=Lines(),
        record=BatchRecord(dict(kept)),
    )

    async def main():
        batch = asyncio.ensure_future(run.run())
        for _ in range(50):
            await asyncio.sleep(0)
        in_flight = len(asyncio.all_tasks()) - 2  # this coroutine and the batch's
        hook.gate.set()
        return in_flight, await batch

    in_flight, outcomes = asyncio.run(main())
    # The gather and the creates' shielded calls besides the items: not 300 items' coroutines waiting.
    assert in_flight <= 2 * CREATES_IN_FLIGHT + 2
    assert [o.status for o in outcomes] == [EventStatus.SUCCESS] * 300
    assert outcomes[0].kie_task_id == "kept" and hook.created == 299
    assert "kept" in hook.polled and "dropped" not in hook.polled
