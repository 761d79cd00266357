"""The engine's pure parts: the record, each job's outcome, the retry record, the log's lines, which
waiting jobs a finished one wakes, and how many coroutines a big run keeps."""

from __future__ import annotations

import asyncio
import time

from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.events import Job, JobOutcome, JobRecord, JobRef, JobsEvent, Status
from airflow_provider_kie.exceptions import KieAmbiguousCreateError, KieAuthError, KieTimeoutError
from airflow_provider_kie.jobs import CREATES_IN_FLIGHT, FAILURES_LOGGED, JobLog, JobRun
from airflow_provider_kie.waiting import PollPolicy

BODY = {"model": "seedream/4.5-edit", "input": {"prompt": "p"}}


class Lines(list):
    def info(self, message, *args):
        self.append(message % args)

    warning = info


def test_the_record_round_trips_through_json_keys():
    record = JobRecord({0: JobRef("a", 10.0), 12: JobRef("b", 20.0)}, {0, 12, 13})
    assert JobRecord.from_dict(record.to_dict()) == record
    assert record.to_dict()["jobs"].keys() == {"0", "12"}  # JSON object keys are strings
    assert JobRecord.from_dict(None) == JobRecord()


def test_outcomes_say_what_a_retry_can_fix():
    job = JobRef("t1", 1.0)
    done = KieTask(kie_task_id="t1", state=TaskState.SUCCESS, result_urls=("https://r/1.png",))
    failed = KieTask(kie_task_id="t1", state=TaskState.FAIL, fail_code="500", fail_msg="boom")
    outcomes = [
        JobOutcome.finished(0, job, done, stored=["file:///o/t1-0.png"]),
        JobOutcome.finished(1, job, failed),
        JobOutcome.errored(2, None, KieAmbiguousCreateError("lost")),
        JobOutcome.errored(3, job, KieAuthError("bad key")),
        JobOutcome.errored(4, job, KieTimeoutError("late")),
    ]
    results = [o.to_dict() for o in outcomes]
    assert results[0]["result"] == ["file:///o/t1-0.png"] and results[0]["result_urls"] == ["https://r/1.png"]
    assert results[0]["error"] is None and results[0]["stored"]
    assert [r["retryable"] for r in results] == [False, True, False, False, False]
    assert outcomes[1].message == "failCode 500: boom" and results[1]["result"] == []
    assert results[2]["kie_task_id"] is None and results[4]["status"] == "timeout"
    assert "late" in results[4]["error"]
    assert [o.index for o in JobsEvent(outcomes, JobRecord()).failed] == [1, 2, 3, 4]
    assert [JobOutcome.from_dict(r) for r in results] == outcomes  # what XCom and events carry


def test_the_end_of_many_jobs_logs_the_totals_and_the_first_failures_not_a_line_per_job():
    outcomes = [
        JobOutcome(i, Status.SUCCESS, f"t{i}", result=("https://r/1.png",), credits_consumed=2.0)
        for i in range(500)
    ]
    outcomes += [
        JobOutcome(500 + i, Status.FAILED, f"f{i}", fail_code="500", fail_msg="boom") for i in range(80)
    ]
    lines = Lines()
    for line in JobLog(len(outcomes), lines).lines(outcomes):
        line()
    assert lines[0] == "Kie jobs: 500 of 580 succeeded, 1000 credits"
    assert lines[1] == "Kie job 500: failed, Kie task f0: failCode 500: boom"
    assert len(lines) == 1 + FAILURES_LOGGED + 1
    assert lines[-1] == f"Kie jobs: {80 - FAILURES_LOGGED} more did not succeed (see XCom)"


def test_the_event_round_trips_and_says_when_a_worker_must_take_over():
    outcomes = [
        JobOutcome(0, Status.SUCCESS, "a", 1.0, result=("https://r/1.png",), credits_consumed=6.0),
        JobOutcome(1, Status.FAILED, "b"),
    ]
    event = JobsEvent(outcomes, JobRecord({0: JobRef("a", 1.0)}))
    assert JobsEvent.from_dict(event.to_dict()) == event
    assert JobsEvent.from_dict(JobsEvent(needs_worker="files").to_dict()).needs_worker == "files"


def test_a_retry_record_drops_only_what_kie_failed():
    record = JobRecord({0: JobRef("a", 1.0), 1: JobRef("b", 1.0)}, {0, 1, 2})
    outcomes = [JobOutcome(0, Status.SUCCESS), JobOutcome(1, Status.FAILED), JobOutcome(2, Status.ERROR)]
    assert record.for_retry(outcomes) == JobRecord({0: JobRef("a", 1.0)}, {0, 2})


def test_the_log_of_many_jobs_has_a_line_per_phase_and_change_at_most_every_interval():
    lines = Lines()
    progress = JobLog(3, lines)
    progress.begin(JobRecord())
    for index in range(3):
        progress.set(index, "creating")
    for index in range(3):
        progress.set(index, "waiting")  # the create phase ends: a line
    progress.set(0, "generating")  # within the interval: no line
    for index in range(3):
        progress.set(index, "success")  # done: a line
    assert lines == [
        "Kie jobs, 3 in all: 3 to create",
        "Kie jobs, 3 in all: 3 waiting",
        "Kie jobs, 3 in all: 3 success",
    ]


def test_the_log_of_one_job_tells_that_jobs_story_not_counts():
    lines = Lines()
    log = JobLog(1, lines)
    log.begin(JobRecord({0: JobRef("t1", 1.0)}))
    log.set(0, "generating", "t1")
    log.set(0, "success", "t1")  # said by the run's end
    assert lines == ["Kie task t1, created before this run, is generating"]
    fresh = Lines()
    log = JobLog(1, fresh)
    log.begin(JobRecord({0: JobRef("t2", 1.0)}))
    log.set(0, "success", "t2")  # found done at once: still says it was created before this run
    assert fresh == ["Kie task t2, created before this run, is success"]


def test_a_finished_task_wakes_the_unfinished_ones_created_before_it_or_just_after():
    items = [Job(BODY) for _ in range(6)]
    created = [100.0, 101.0, 102.0, 110.0, 112.5, 113.5]  # item 5 comes over 3 s after item 3
    record = JobRecord({i: JobRef(f"t{i}", at) for i, at in enumerate(created)})
    run = JobRun(
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


def test_jobs_to_create_get_a_coroutine_only_when_a_create_place_frees():
    class GatedHook:  # createTask answers when the test lets it; every task has succeeded
        def __init__(self):
            self.gate = asyncio.Event()
            self.created = 0
            self.polled = set()

        async def create(self, job, *, claim, callback_for):
            await claim.sending()
            await self.gate.wait()
            self.created += 1
            return f"t{self.created}"

        async def get_task(self, kie_task_id, family="market"):
            self.polled.add(kie_task_id)
            return KieTask(kie_task_id=kie_task_id, state=TaskState.SUCCESS, result_urls=("https://r/1.png",))

    # Created by an earlier try: 0 is waited for at once; 300 is of an item this try no longer has.
    kept = {0: JobRef("kept", time.time() + 60), 300: JobRef("dropped", time.time() + 60)}
    hook = GatedHook()
    run = JobRun(
        hook,
        [Job(BODY) for _ in range(300)],
        timeout=60,
        poll_policy=PollPolicy(initial_interval=0.01),
        log=Lines(),
        record=JobRecord(dict(kept)),
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
    assert [o.status for o in outcomes] == [Status.SUCCESS] * 300
    assert outcomes[0].kie_task_id == "kept" and hook.created == 299
    assert "kept" in hook.polled and "dropped" not in hook.polled
