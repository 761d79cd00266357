"""The batch path against the emulator: the operator validates and defers once, the trigger creates and
waits for every item under one limiter, per-item outcomes, the partial-failure policy, a retry that
resumes, and a triggerer restart mid-create."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from airflow.triggers.base import TaskSuccessEvent

from airflow_provider_kie import hints as hints_module
from airflow_provider_kie import ledger as ledger_module
from airflow_provider_kie.callbacks import HINT_PREFIX, CallbackTarget, receiver_url
from airflow_provider_kie.compat import TRIGGER_WRITES_XCOM, trigger_lists_variables
from airflow_provider_kie.events import Job
from airflow_provider_kie.exceptions import KieInputError, KieJobsFailedError
from airflow_provider_kie.hints import HintReader
from airflow_provider_kie.hooks.kie import KieAsyncHook
from airflow_provider_kie.hooks.sessions import close_shared_async_sessions
from airflow_provider_kie.jobs import JobRun
from airflow_provider_kie.ledger import OWNER_KEY, RECORD_KEY
from airflow_provider_kie.operators.batch import KieBatchOperator, SeedreamEditBatchOperator
from airflow_provider_kie.triggers.jobs import KieJobsTrigger
from airflow_provider_kie.waiting import PollPolicy
from tests.support import EDIT_INPUT, DictStateStore, FakeTI

pytestmark = pytest.mark.usefixtures("fast_kie")

IMAGE = ["https://a/b.png"]


def batch(edits, **kwargs):
    return SeedreamEditBatchOperator(
        task_id="edits", edits=edits, image_urls=IMAGE, poll_interval=0.05, **kwargs
    )


def run_to_end(operator, ctx, triggerer_xcom=None):
    """execute, then (if it deferred) the trigger, then execute_complete: what Airflow does."""
    try:
        return operator.execute(ctx)
    except TaskDeferred as deferred:
        trigger = deferred.trigger
        if triggerer_xcom is None:
            event = asyncio.run(_first(trigger))
        else:
            event = triggerer_xcom.run_in_triggerer(trigger)
        if isinstance(event, TaskSuccessEvent):
            return event
        return getattr(operator, deferred.method_name)(ctx, event.payload)


async def _first(trigger):
    try:
        async for event in trigger.run():
            return event
    finally:
        await close_shared_async_sessions()


def context(store=None):
    return {"ti": FakeTI(), "task_state_store": store if store is not None else DictStateStore()}


@pytest.mark.parametrize("deferrable", [False, True])
def test_every_item_is_created_once_and_reported_in_order(kie_emulator, deferrable):
    prompts = [f"Make it glass, take {n}" for n in range(5)]
    ctx = context()
    results = run_to_end(batch(prompts, deferrable=deferrable, end_from_trigger=False), ctx)
    assert kie_emulator.count("createTask") == len(kie_emulator.state.tasks) == 5
    assert [r["index"] for r in results] == list(range(5))
    assert all(r["status"] == "success" and r["error"] is None for r in results)
    by_id = {t.task_id: t for t in kie_emulator.state.tasks.values()}
    for prompt, result in zip(prompts, results, strict=True):
        task = by_id[result["kie_task_id"]]
        assert task.body["input"]["prompt"] == prompt and task.body["input"]["image_urls"] == IMAGE
        assert result["result"] == [f"{kie_emulator.url}/files/results/{task.task_id}.png"]
    assert set(ctx["task_state_store"][RECORD_KEY]["jobs"]) == {str(n) for n in range(5)}


def test_a_bad_item_fails_the_batch_naming_it_with_no_request(kie_emulator):
    edits = ["fine", {"prompt": "fine too", "aspect_ratio": "5:4"}]
    with pytest.raises(KieInputError, match=r"edits\[1\]\.aspect_ratio.*1:1"):
        batch(edits, deferrable=True).execute(context())
    with pytest.raises(KieInputError, match=r"'edits'.*list"):
        batch("not a list").execute(context())
    with pytest.raises(KieInputError, match=r"'inputs\[0\]\.prompt'"):
        KieBatchOperator(task_id="b", model="seedream/4.5-edit", inputs=[{"image_urls": IMAGE}]).execute(
            context()
        )
    with pytest.raises(KieInputError, match=r"on_item_failure.*'fail', 'report'"):
        batch(["x"], on_item_failure="ignore")
    assert kie_emulator.requests == []


def test_no_items_no_request(kie_emulator):
    assert batch([]).execute(context()) == []
    assert kie_emulator.requests == []


@pytest.mark.parametrize("deferrable", [False, True])
def test_partial_failure_fails_after_every_item_ended_and_a_retry_pays_only_for_the_failed(
    kie_emulator, deferrable
):
    prompts = ["one", "two [fail]", "three"]
    store = DictStateStore()
    first = context(store)
    with pytest.raises(KieJobsFailedError, match=r"1 of 3 jobs.*job 1: failed"):
        run_to_end(batch(prompts, deferrable=deferrable, end_from_trigger=False), first)
    statuses = [r["status"] for r in first["ti"].xcom["return_value"]]
    assert statuses == ["success", "failed", "success"]
    assert kie_emulator.count("createTask") == 3

    # The retry: the two that succeeded are waited for again (not paid for), the failed one is recreated.
    kie_emulator.state.config.fail_marker = "[never]"
    results = run_to_end(batch(prompts, deferrable=deferrable, end_from_trigger=False), context(store))
    assert [r["status"] for r in results] == ["success"] * 3
    assert kie_emulator.count("createTask") == 4
    before = first["ti"].xcom["return_value"]
    assert [results[i]["kie_task_id"] for i in (0, 2)] == [before[i]["kie_task_id"] for i in (0, 2)]


def test_on_airflow_2_a_create_that_failed_is_reported_and_the_others_waited_for_on_the_worker(
    kie_emulator, monkeypatch
):
    """Airflow 2's triggers cannot keep what they send, so the worker creates; a create whose reply was
    lost is never sent again, and the jobs it did create are waited for, not dropped."""
    from airflow_provider_kie.operators import base

    monkeypatch.setattr(base, "TRIGGER_WRITES_XCOM", False)
    kie_emulator.add_fault("drop-after", "createTask", times=1)  # created at Kie, its reply lost
    ctx = context()
    with pytest.raises(AirflowFailException, match=r"1 of 2 jobs did not succeed"):
        run_to_end(batch(["one", "two"], deferrable=True, end_from_trigger=False), ctx)
    assert kie_emulator.count("createTask") == 2 and len(kie_emulator.state.tasks) == 2
    results = ctx["ti"].xcom["return_value"]
    assert sorted(r["status"] for r in results) == ["error", "success"]


def test_report_policy_succeeds_and_reports_the_failed_items(kie_emulator):
    results = run_to_end(batch(["ok", "bad [fail]"], on_item_failure="report", deferrable=True), context())
    assert [r["status"] for r in results] == ["success", "failed"]
    assert results[1]["result"] == [] and "failCode" in results[1]["error"] and results[1]["retryable"]


def test_an_error_no_retry_can_fix_fails_the_task_at_once(kie_emulator):
    kie_emulator.config.api_keys = ["other"]  # 401 on every createTask
    store = DictStateStore()
    with pytest.raises(AirflowFailException, match=r"2 of 2 jobs.*(KieAuthError|401)"):
        run_to_end(batch(["a", "b"]), context(store))
    # Refused for sure: not an ambiguous create, so a later try may send them.
    assert store[RECORD_KEY] == {"jobs": {}, "sent": []}


def test_files_are_uploaded_once_for_the_whole_batch(kie_emulator):
    from tests.support import EXAMPLES

    edits = [{"prompt": f"take {n}", "image_urls": [str(EXAMPLES / "sample.png")]} for n in range(3)]
    results = run_to_end(batch(edits), context())
    assert [r["status"] for r in results] == ["success"] * 3
    assert kie_emulator.count("upload") == 1
    sent = {tuple(t.body["input"]["image_urls"]) for t in kie_emulator.state.tasks.values()}
    assert len(sent) == 1 and next(iter(sent))[0].startswith("http")


def test_results_are_stored_with_a_manifest_each(kie_emulator, tmp_path):
    results = run_to_end(batch(["a", "b"], output_path=str(tmp_path / "out")), context())
    for result in results:
        (stored,) = result["result"]
        assert stored.startswith("file://") and stored.endswith(".png")
        manifest = json.loads((tmp_path / "out" / f"{result['kie_task_id']}.json").read_text())
        assert manifest["stored"] == [stored] and manifest["input"]["image_urls"] == IMAGE


@pytest.mark.skipif(not TRIGGER_WRITES_XCOM, reason="a trigger keeps the batch's record from Airflow 3")
class TestInTheTriggerer:
    def test_defers_once_and_the_trigger_ends_the_task(self, kie_emulator, triggerer_xcom):
        operator = batch(["a", "b", "c"], deferrable=True)
        with pytest.raises(TaskDeferred) as info:
            operator.execute(context())
        assert kie_emulator.requests == []  # validated on the worker, created in the triggerer
        kwargs = info.value.trigger.serialize()[1]
        assert json.loads(json.dumps(kwargs)) == kwargs and EDIT_INPUT["prompt"] not in json.dumps(kwargs)
        event = triggerer_xcom.run_in_triggerer(KieJobsTrigger(**kwargs))
        assert isinstance(event, TaskSuccessEvent)
        results = triggerer_xcom["return_value"]
        assert [r["status"] for r in results] == ["success"] * 3
        assert kie_emulator.count("createTask") == 3

    @pytest.mark.skipif(
        not trigger_lists_variables(), reason="a trigger lists callback hints from Airflow 3.3"
    )
    def test_with_callbacks_each_task_is_read_once_its_hint_came(
        self, kie_emulator, calling_back, triggerer_xcom, monkeypatch
    ):
        kie_emulator.config.update({"null_seconds": 0, "generating_seconds": 1.0})

        def list_keys():  # the plugin keeps a hint once a Kie task has ended and called back
            ended = [t for t in kie_emulator.state.tasks.values() if t.done_at <= time.time()]
            return frozenset(HINT_PREFIX + t.task_id for t in ended)

        monkeypatch.setattr(hints_module, "hint_reader", lambda *source: HintReader(list_keys))
        operator = batch(["a", "b", "c"], deferrable=True)
        with pytest.raises(TaskDeferred) as info:
            operator.execute(context())
        event = triggerer_xcom.run_in_triggerer(KieJobsTrigger(**info.value.trigger.serialize()[1]))
        assert isinstance(event, TaskSuccessEvent)
        assert [r["status"] for r in triggerer_xcom["return_value"]] == ["success"] * 3
        batch_target = CallbackTarget.of("kie_default", triggerer_xcom.ti)
        urls = {
            task.body["input"]["prompt"]: task.body["callBackUrl"]
            for task in kie_emulator.state.tasks.values()
        }
        # Each item's URL names the item, so the receiver reads that item's chunk of the record only.
        assert sorted(urls) == ["a", "b", "c"]
        for index, prompt in enumerate("abc"):
            assert urls[prompt].startswith(
                receiver_url(calling_back) + batch_target.for_item(index).ref + "?"
            )
        # Each task read once, after its hint (polling every 0.05 s would have read each ~20 times).
        assert kie_emulator.count("recordInfo") == 3

    @pytest.mark.fault(
        fault="triggerer stops a batch (cancelled) while a createTask reply is in flight",
        where="triggerer (batch trigger)",
        expected="the stopping run waits for the reply and keeps its id; the next run creates nothing again",
    )
    def test_a_cancelled_run_keeps_the_id_of_a_create_in_flight(self, kie_emulator, triggerer_xcom):
        kie_emulator.config.generating_seconds = 1.0
        kie_emulator.add_fault("slow-body", "createTask", delay=3)  # the first create's reply comes late
        kwargs = self._deferred(batch(["a", "b", "c"], deferrable=True, on_item_failure="report"))
        triggerer_xcom.stop_when(
            KieJobsTrigger(**kwargs),
            lambda: len(_kept_jobs(triggerer_xcom)) == 2 and len(kie_emulator.state.tasks) == 3,
        )
        assert len(_kept_jobs(triggerer_xcom)) == 3  # the slow reply came as the run stopped, and was kept
        assert triggerer_xcom[OWNER_KEY]["released"]  # so the next run takes over at once
        event = triggerer_xcom.run_in_triggerer(KieJobsTrigger(**kwargs))
        assert isinstance(event, TaskSuccessEvent)
        assert [r["status"] for r in triggerer_xcom["return_value"]] == ["success"] * 3
        assert kie_emulator.count("createTask") == 3

    @pytest.mark.fault(
        fault="triggerer killed while a batch's createTask reply was in flight",
        where="triggerer (batch trigger)",
        expected="the items created wait; the one whose id was lost is an ambiguous create; no createTask resent",
    )
    def test_a_killed_run_leaves_an_ambiguous_create_never_resent(
        self, kie_emulator, triggerer_xcom, monkeypatch
    ):
        kie_emulator.config.generating_seconds = 1.0
        kie_emulator.add_fault("slow-body", "createTask", delay=5)
        monkeypatch.setattr(ledger_module, "CLAIM_LIVE_SECONDS", 2.0)  # the killed run's claim lapses sooner
        kwargs = self._deferred(batch(["a", "b", "c"], deferrable=True, on_item_failure="report"))

        async def killed(run):  # a killed process runs no clean-up
            return None

        with monkeypatch.context() as patch:
            patch.setattr(JobRun, "_keep_received", killed)
            triggerer_xcom.stop_when(
                KieJobsTrigger(**kwargs),
                lambda: len(_kept_jobs(triggerer_xcom)) == 2 and len(kie_emulator.state.tasks) == 3,
            )
        assert len(_kept_jobs(triggerer_xcom)) == 2 and len(triggerer_xcom["kie_jobs.0"]["sent"]) == 1
        event = triggerer_xcom.run_in_triggerer(KieJobsTrigger(**kwargs))
        assert isinstance(event, TaskSuccessEvent)
        statuses = sorted(r["status"] for r in triggerer_xcom["return_value"])
        assert statuses == ["error", "success", "success"]
        (lost,) = [r for r in triggerer_xcom["return_value"] if r["status"] == "error"]
        assert "was not sent again" in lost["error"] and not lost["retryable"]
        assert kie_emulator.count("createTask") == 3

    @pytest.mark.parametrize("second_starts", ["together", "mid-create"])
    def test_two_runs_of_one_batch_at_once_create_each_item_once(
        self, kie_emulator, triggerer_xcom, second_starts
    ):
        """Airflow may run one trigger in two triggerers at once (an HA hand-over): one run creates, the
        other waits for it and takes over what it leaves; both report the same Kie tasks."""
        kie_emulator.config.generating_seconds = 0.5
        kie_emulator.add_fault("slow-body", "createTask", times=None, delay=0.2)  # creates take a while
        edits = [f"edit {n}" for n in range(12)]
        kwargs = {
            **self._deferred(batch(edits, deferrable=True, end_from_trigger=False)),
            "resume_not_before": None,
        }

        async def both():
            first, second = KieJobsTrigger(**kwargs), KieJobsTrigger(**kwargs)
            first.task_instance = second.task_instance = triggerer_xcom.ti
            try:
                one = asyncio.ensure_future(anext(first.run()))
                if second_starts == "mid-create":
                    for _ in range(1000):
                        if 0 < kie_emulator.count("createTask") < len(edits):
                            break
                        await asyncio.sleep(0.01)
                    assert 0 < kie_emulator.count("createTask") < len(edits), "not mid-create"
                two = asyncio.ensure_future(anext(second.run()))
                return await asyncio.gather(one, two)
            finally:
                await close_shared_async_sessions()

        events = asyncio.run(both())
        assert kie_emulator.count("createTask") == len(edits)
        assert len({task.body["input"]["prompt"] for task in kie_emulator.state.tasks.values()}) == len(edits)
        reported = [[r["kie_task_id"] for r in event.payload["outcomes"]] for event in events]
        assert reported[0] == reported[1] and set(reported[0]) == set(kie_emulator.state.tasks)
        assert all(r["status"] == "success" for event in events for r in event.payload["outcomes"])

    @staticmethod
    def _deferred(operator):
        with pytest.raises(TaskDeferred) as info:
            operator.execute(context())
        return info.value.trigger.serialize()[1]


def _kept_jobs(xcom) -> dict:
    """The jobs a batch's ledger kept in XCom (its chunks)."""
    return {
        index: job
        for key, chunk in xcom.items()
        if key.startswith(RECORD_KEY + ".")
        for index, job in chunk["jobs"].items()
    }


class RecordingLog:
    def __init__(self):
        self.lines: list[str] = []

    def info(self, message, *args):
        self.lines.append(message % args)

    warning = exception = info


def test_progress_is_logged_per_change_of_the_batch_not_per_poll(kie_emulator):
    kie_emulator.config.generating_seconds = 0.5
    items = [
        Job({"model": "seedream/4.5-edit", "input": {**EDIT_INPUT, "prompt": f"p{n}"}}) for n in range(4)
    ]
    log = RecordingLog()

    async def main():
        try:
            async with KieAsyncHook() as hook:
                run = JobRun(hook, items, timeout=60, poll_policy=PollPolicy(0.05, backoff=0), log=log)
                return await run.run()
        finally:
            await close_shared_async_sessions()

    outcomes = asyncio.run(main())
    assert [o.status.value for o in outcomes] == ["success"] * 4
    assert (
        log.lines[0] == "Kie jobs, 4 in all: 4 to create" and log.lines[-1] == "Kie jobs, 4 in all: 4 success"
    )
    assert len(log.lines) < kie_emulator.count("recordInfo")  # per change of the jobs, not per poll
    assert all(line.startswith("Kie jobs, 4 in all: ") for line in log.lines)  # no line per job and poll
