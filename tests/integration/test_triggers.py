"""KieJobsTrigger against the emulator over HTTP, as a single job's trigger: its events, creating or only
waiting, ending a task itself, its ledger across restarts and hand-overs; and 0.1.0's KieTaskTrigger."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
from airflow.triggers.base import TaskSuccessEvent

from airflow_provider_kie import hints as hints_module
from airflow_provider_kie import ledger as ledger_module
from airflow_provider_kie import models
from airflow_provider_kie.callbacks import HINT_PREFIX, CallbackTarget
from airflow_provider_kie.compat import TRIGGER_WRITES_XCOM, trigger_lists_variables
from airflow_provider_kie.events import Job, JobRecord, JobRef
from airflow_provider_kie.hints import HintReader
from airflow_provider_kie.hooks.kie import KieHook
from airflow_provider_kie.hooks.sessions import close_shared_async_sessions
from airflow_provider_kie.jobs import JobRun
from airflow_provider_kie.ledger import OWNER_KEY
from airflow_provider_kie.links import KieResultLink
from airflow_provider_kie.triggers.jobs import KieJobsTrigger
from airflow_provider_kie.triggers.kie import KieTaskTrigger
from airflow_provider_kie.waiting import PollPolicy
from tests.support import EDIT_INPUT, run_trigger

pytestmark = pytest.mark.usefixtures("fast_kie")

CREATE_BODY = {"model": models.SEEDREAM_EDIT_MODEL, "input": EDIT_INPUT}
FAST = PollPolicy(initial_interval=0.05, backoff=0).to_dict()


def wait_trigger(kie_task_id, seconds=30.0, **kwargs):
    """A single job that only waits for a Kie task created elsewhere (a sensor's)."""
    return KieJobsTrigger.waiting_for(kie_task_id, time.time() + seconds, **kwargs)


def create_trigger(timeout=60, **kwargs):
    return KieJobsTrigger(jobs=[Job(CREATE_BODY)], timeout=timeout, poll_policy=FAST, single=True, **kwargs)


def job(event) -> dict:
    """The one job's outcome in an event."""
    (outcome,) = event["outcomes"]
    return outcome


class TestTrigger:
    def create(self, hook_input=EDIT_INPUT):
        return KieHook().create_task(models.SEEDREAM_EDIT_MODEL, hook_input)

    def test_success_event(self, kie_emulator):
        task_id = self.create()
        event = job(run_trigger(wait_trigger(task_id, 30, poll_policy=FAST)))
        assert event["status"] == "success" and event["result_urls"]
        assert kie_emulator.count("recordInfo") >= 2  # tolerated "recordInfo is null" first

    def test_failed_event(self):
        event = job(
            run_trigger(wait_trigger(self.create({**EDIT_INPUT, "prompt": "[fail]"}), 30, poll_policy=FAST))
        )
        assert event["status"] == "failed"
        assert event["fail_code"] == "500" and event["fail_msg"]

    def test_timeout_event(self, kie_emulator):
        kie_emulator.config.generating_seconds = 30
        event = job(run_trigger(wait_trigger(self.create(), 0.3, poll_policy=FAST)))
        assert event["status"] == "timeout" and "deadline" in event["error"]

    def test_error_event_keeps_class_and_code(self, kie_emulator):
        task_id = self.create()
        kie_emulator.config.api_keys = ["other"]
        event = job(run_trigger(wait_trigger(task_id, 30, poll_policy=FAST)))
        assert event["status"] == "error"
        assert event["cause"]["error_class"] == "KieAuthError" and event["cause"]["code"] == 401

    def test_unknown_task_ends_after_grace(self):
        policy = {**FAST, "not_found_grace": 0.2}
        event = job(run_trigger(wait_trigger("f" * 32, 30, poll_policy=policy)))
        assert event["status"] == "error" and event["cause"]["error_class"] == "KieNotFoundError"

    def test_end_from_trigger_success_ends_the_task_with_its_xcom(self, triggerer_xcom):
        task_id = self.create()
        trigger = wait_trigger(task_id, 30, poll_policy=FAST, end_from_trigger=True)
        event = triggerer_xcom.run_in_triggerer(trigger)
        assert isinstance(event, TaskSuccessEvent)
        urls = triggerer_xcom["return_value"]
        assert urls and urls == triggerer_xcom["kie_task"]["result_urls"]
        assert triggerer_xcom["kie_task"]["kie_task_id"] == task_id
        if TRIGGER_WRITES_XCOM:  # Airflow 3: the rendered link a worker's finalize would have left
            assert triggerer_xcom[KieResultLink().xcom_key] == urls[0]
        if TRIGGER_WRITES_XCOM:  # pushed like a worker would, not through the event (stored twice-encoded)
            assert event.xcoms is None

    def test_end_from_trigger_without_a_task_instance_resumes_the_worker(self):
        # `airflow dags test` runs triggers with no task instance: only execute_complete can finish.
        event = job(run_trigger(wait_trigger(self.create(), 30, poll_policy=FAST, end_from_trigger=True)))
        assert event["status"] == "success"

    def test_end_from_trigger_failure_still_resumes_the_worker(self):
        task_id = self.create({**EDIT_INPUT, "prompt": "[fail]"})
        event = job(run_trigger(wait_trigger(task_id, 30, poll_policy=FAST, end_from_trigger=True)))
        assert event["status"] == "failed"

    @pytest.mark.skipif(not TRIGGER_WRITES_XCOM, reason="a trigger writes XCom from Airflow 3")
    def test_creates_the_task_and_remembers_it_in_xcom(self, kie_emulator, triggerer_xcom):
        trigger = create_trigger()
        started = time.time()
        event = job(triggerer_xcom.run_in_triggerer(trigger).payload)
        (task_id,) = kie_emulator.state.tasks
        assert kie_emulator.state.tasks[task_id].body == CREATE_BODY
        assert event["status"] == "success" and event["kie_task_id"] == task_id
        assert triggerer_xcom["kie_task_id"] == task_id
        kept = triggerer_xcom["kie_jobs.0"]["jobs"]["0"]
        assert started + 60 <= kept["deadline"] == event["deadline"] <= time.time() + 60

    @pytest.mark.skipif(not TRIGGER_WRITES_XCOM, reason="a trigger writes XCom from Airflow 3")
    @pytest.mark.fault(
        fault="triggerer lost after the trigger created the task",
        where="triggerer (trigger that creates)",
        expected="the restarted trigger waits for the same Kie task, no new createTask",
    )
    def test_restarted_trigger_waits_for_the_task_it_created(self, kie_emulator, triggerer_xcom):
        kie_emulator.config.generating_seconds = 1.0
        kwargs = create_trigger().serialize()[1]

        triggerer_xcom.stop_when(
            KieJobsTrigger(**kwargs),
            lambda: "kie_task_id" in triggerer_xcom and kie_emulator.count("recordInfo") >= 1,
        )
        (task_id,) = kie_emulator.state.tasks
        assert triggerer_xcom["kie_task_id"] == task_id and kie_emulator.count("recordInfo") >= 1
        deadline = triggerer_xcom["kie_jobs.0"]["jobs"]["0"]["deadline"]
        event = job(triggerer_xcom.run_in_triggerer(KieJobsTrigger(**kwargs)).payload)
        assert (
            event["status"] == "success" and event["kie_task_id"] == task_id and event["deadline"] == deadline
        )
        assert kie_emulator.count("createTask") == 1

    @pytest.mark.skipif(not TRIGGER_WRITES_XCOM, reason="a trigger writes XCom from Airflow 3")
    @pytest.mark.fault(
        fault="triggerer lost between the createTask and its id being stored",
        where="triggerer (trigger that creates)",
        expected="ambiguous-create error, no second createTask; resent only with retry_ambiguous_create",
    )
    @pytest.mark.parametrize("retry_ambiguous_create", [False, True])
    def test_restarted_trigger_does_not_resend_a_create_in_flight(
        self, kie_emulator, triggerer_xcom, retry_ambiguous_create, monkeypatch
    ):
        kie_emulator.add_fault("slow-body", "createTask", delay=5)  # created; the reply comes late
        kwargs = create_trigger(retry_ambiguous_create=retry_ambiguous_create).serialize()[1]

        async def killed(run):  # a killed process runs no clean-up (a cancelled one keeps the id)
            return None

        with monkeypatch.context() as patch:
            patch.setattr(JobRun, "_keep_received", killed)
            triggerer_xcom.stop_when(KieJobsTrigger(**kwargs), lambda: len(kie_emulator.state.tasks) == 1)
        assert len(kie_emulator.state.tasks) == 1 and "kie_task_id" not in triggerer_xcom
        event = job(triggerer_xcom.run_in_triggerer(KieJobsTrigger(**kwargs)).payload)
        if retry_ambiguous_create:  # the user accepted paying twice
            assert event["status"] == "success" and kie_emulator.count("createTask") == 2
        else:
            assert event["status"] == "error" and event["cause"]["error_class"] == "KieAmbiguousCreateError"
            assert "was not sent again" in event["error"]
            assert kie_emulator.count("createTask") == 1

    @pytest.mark.skipif(not TRIGGER_WRITES_XCOM, reason="a trigger writes XCom from Airflow 3")
    @pytest.mark.fault(
        fault="triggerer lost after claiming the create, before sending it",
        where="triggerer (trigger that creates)",
        expected="claim released; the next run creates once and succeeds",
    )
    def test_a_trigger_stopped_before_its_create_left_lets_the_next_run_create(
        self, kie_emulator, triggerer_xcom, monkeypatch
    ):
        monkeypatch.setattr(ledger_module, "CLAIM_SETTLE_SECONDS", 3.0)  # stopped while its claim settles
        kwargs = create_trigger().serialize()[1]
        triggerer_xcom.stop_when(KieJobsTrigger(**kwargs), lambda: OWNER_KEY in triggerer_xcom)
        assert kie_emulator.count("createTask") == 0
        assert triggerer_xcom[OWNER_KEY]["released"]  # handed over: the next run need not wait

        monkeypatch.setattr(ledger_module, "CLAIM_SETTLE_SECONDS", 0.05)
        event = job(triggerer_xcom.run_in_triggerer(KieJobsTrigger(**kwargs)).payload)
        assert event["status"] == "success" and kie_emulator.count("createTask") == 1

    @pytest.mark.skipif(not TRIGGER_WRITES_XCOM, reason="a trigger writes XCom from Airflow 3")
    @pytest.mark.fault(
        fault="triggerer SIGKILLed while claiming the create, before sending it (no chance to release)",
        where="triggerer (trigger that creates)",
        expected="the claim lapses with the killed run's heartbeat; the next run creates once and succeeds",
    )
    def test_a_killed_runs_claim_lapses_and_the_next_run_creates(self, kie_emulator, triggerer_xcom):
        triggerer_xcom[OWNER_KEY] = {"by": "a-killed-run", "at": time.time(), "chunks": 0, "released": False}
        event = job(
            triggerer_xcom.run_in_triggerer(KieJobsTrigger(**create_trigger().serialize()[1])).payload
        )
        assert event["status"] == "success" and kie_emulator.count("createTask") == 1
        assert triggerer_xcom[OWNER_KEY]["by"] != "a-killed-run"

    @pytest.mark.skipif(not TRIGGER_WRITES_XCOM, reason="a trigger writes XCom from Airflow 3")
    @pytest.mark.fault(
        fault="triggerer lost while its create waits to retry a 429 (Kie created nothing)",
        where="triggerer (trigger that creates)",
        expected="the create is unmarked; the next run creates once and succeeds",
    )
    def test_a_trigger_stopped_between_429_retries_lets_the_next_run_create(
        self, kie_emulator, triggerer_xcom
    ):
        kie_emulator.add_fault("429-http", "createTask", retry_after=30)  # the retry waits long
        kwargs = create_trigger().serialize()[1]

        def answered_429():
            chunk = triggerer_xcom.get("kie_jobs.0")
            return kie_emulator.count("createTask") == 1 and chunk is not None and chunk["sent"] == {}

        triggerer_xcom.stop_when(KieJobsTrigger(**kwargs), answered_429)
        event = job(triggerer_xcom.run_in_triggerer(KieJobsTrigger(**kwargs)).payload)
        assert event["status"] == "success"
        assert kie_emulator.count("createTask") == 2 and len(kie_emulator.state.tasks) == 1

    @pytest.mark.skipif(not TRIGGER_WRITES_XCOM, reason="a trigger writes XCom from Airflow 3")
    @pytest.mark.fault(
        fault="a trigger of 0.1.0 created its task and kept its id; the upgraded triggerer runs it",
        where="triggerer (trigger that creates), across the upgrade",
        expected="the new run waits for the same Kie task, no createTask",
    )
    def test_a_task_created_before_the_ledger_is_waited_for(self, kie_emulator, triggerer_xcom):
        kie_task_id = KieHook().create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        # 0.1.0's record: the create marked sent with its epoch seconds, then the id; its trigger's kwargs.
        triggerer_xcom.update({"kie_create_sent": time.time() - 5, "kie_task_id": kie_task_id})
        with pytest.warns(DeprecationWarning):
            trigger = KieTaskTrigger(create=CREATE_BODY, timeout=60, poll_policy=FAST)
        event = job(triggerer_xcom.run_in_triggerer(trigger).payload)
        assert event["status"] == "success" and event["kie_task_id"] == kie_task_id
        assert kie_emulator.count("createTask") == 1

    @pytest.mark.skipif(not TRIGGER_WRITES_XCOM, reason="a trigger writes XCom from Airflow 3")
    def test_a_create_marked_sent_by_0_1_0_without_an_id_stays_ambiguous(self, kie_emulator, triggerer_xcom):
        triggerer_xcom["kie_create_sent"] = time.time() - 120  # 0.1.0's mark: epoch seconds, then sent
        with pytest.warns(DeprecationWarning):
            trigger = KieTaskTrigger(create=CREATE_BODY, timeout=60, poll_policy=FAST)
        event = job(triggerer_xcom.run_in_triggerer(trigger).payload)
        assert event["cause"]["error_class"] == "KieAmbiguousCreateError"
        assert kie_emulator.count("createTask") == 0

    @pytest.mark.skipif(not TRIGGER_WRITES_XCOM, reason="a trigger writes XCom from Airflow 3")
    def test_one_trigger_run_by_two_triggerers_at_once_creates_one_kie_task(
        self, kie_emulator, triggerer_xcom
    ):
        # An HA hand-over can run one trigger in two triggerers: both claim the create, one sends.
        kwargs = create_trigger().serialize()[1]
        kwargs["end_from_trigger"] = False
        first, second = KieJobsTrigger(**kwargs), KieJobsTrigger(**kwargs)
        first.task_instance = second.task_instance = triggerer_xcom.ti

        async def both():
            try:
                return await asyncio.gather(anext(first.run()), anext(second.run()))
            finally:
                await close_shared_async_sessions()

        events = [job(event.payload) for event in asyncio.run(both())]
        assert kie_emulator.count("createTask") == len(kie_emulator.state.tasks) == 1
        assert [e["status"] for e in events] == ["success", "success"], events[1]["error"]
        assert events[0]["kie_task_id"] == events[1]["kie_task_id"] == triggerer_xcom["kie_task_id"]

    @pytest.mark.skipif(not TRIGGER_WRITES_XCOM, reason="a trigger writes XCom from Airflow 3")
    def test_create_error_is_an_event_naming_its_class(self, kie_emulator, triggerer_xcom):
        kie_emulator.config.api_keys = ["other"]
        trigger = create_trigger()
        event = job(triggerer_xcom.run_in_triggerer(trigger).payload)
        assert event["status"] == "error" and event["kie_task_id"] is None
        assert event["cause"]["error_class"] == "KieAuthError" and event["cause"]["code"] == 401
        assert kie_emulator.state.tasks == {} and "kie_task_id" not in triggerer_xcom

    def test_an_event_that_resumes_a_worker_waits_until_resume_not_before(self, triggerer_xcom):
        # apache/airflow#67287: the scheduler must handle the deferring worker's exit first.
        not_before = time.time() + 1.0
        trigger = wait_trigger(self.create(), 30, poll_policy=FAST, resume_not_before=not_before)
        event = triggerer_xcom.run_in_triggerer(trigger)
        assert job(event.payload)["status"] == "success" and time.time() >= not_before
        assert KieJobsTrigger(**trigger.serialize()[1]).resume_not_before == not_before

    def test_0_1_0s_trigger_needs_exactly_one_mode_and_serializes_as_the_jobs_trigger(self):
        with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="either"):
            KieTaskTrigger()
        with pytest.warns(DeprecationWarning):
            old = KieTaskTrigger("abc", 1234.5, "my_conn", FAST)  # 0.1.0 took these by position
        classpath, kwargs = old.serialize()
        assert classpath == "airflow_provider_kie.triggers.jobs.KieJobsTrigger"
        assert JobRecord.from_dict(json.loads(kwargs["record"])).jobs == {0: JobRef("abc", 1234.5)}

    @pytest.mark.parametrize("mode", ["wait", "create"])
    def test_serialize_round_trip(self, mode):
        trigger = (
            wait_trigger("abc", kie_conn_id="my_conn", poll_policy=FAST)
            if mode == "wait"
            else create_trigger(kie_conn_id="my_conn")
        )
        classpath, kwargs = trigger.serialize()
        again = KieJobsTrigger(**json.loads(json.dumps(kwargs)))
        assert again.serialize() == (classpath, kwargs)
        assert "my_conn" in repr(trigger) and "abc" not in json.dumps(kwargs["poll_policy"])


@pytest.mark.skipif(not trigger_lists_variables(), reason="a trigger lists callback hints from Airflow 3.3")
class TestAwaitingKiesCallback:
    """A sensor's trigger (a task it did not create) learns from Kie's record whether Kie calls this
    deployment back for the task; only then does it wait for the hint instead of polling."""

    def hints(self, monkeypatch, kie_emulator):
        listings = []

        def list_keys():  # the plugin keeps a hint once Kie's task has ended and called back
            listings.append(time.time())
            ended = [t for t in kie_emulator.state.tasks.values() if t.done_at <= time.time()]
            return frozenset(HINT_PREFIX + t.task_id for t in ended)

        monkeypatch.setattr(hints_module, "hint_reader", lambda *source: HintReader(list_keys))
        return listings

    def test_a_task_that_calls_back_is_read_again_only_after_its_hint(
        self, kie_emulator, calling_back, triggerer_xcom, monkeypatch
    ):
        kie_emulator.config.update({"null_seconds": 0, "generating_seconds": 1.5})
        listings = self.hints(monkeypatch, kie_emulator)
        target = CallbackTarget("kie_default", "dag", "make", "run")
        kie_task_id = KieHook().create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT, callback_for=target)
        event = job(triggerer_xcom.run_in_triggerer(wait_trigger(kie_task_id, 60, poll_policy=FAST)).payload)
        assert event["status"] == "success"
        # The first read saw the callback URL; the second came with the hint (polling every 0.05 s
        # would have read ~30 times).
        assert kie_emulator.count("recordInfo") == 2
        assert listings

    def test_a_task_that_calls_elsewhere_or_nowhere_is_polled(
        self, kie_emulator, calling_back, triggerer_xcom, monkeypatch
    ):
        kie_emulator.config.update({"null_seconds": 0, "generating_seconds": 0.5})
        listings = self.hints(monkeypatch, kie_emulator)
        hook = KieHook()
        for callback_url in (None, "https://hooks.example.com/kie/callbacks/x"):
            kie_task_id = hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT, callback_url)
            trigger = wait_trigger(kie_task_id, 60, poll_policy=FAST)
            assert job(triggerer_xcom.run_in_triggerer(trigger).payload)["status"] == "success"
        assert kie_emulator.count("recordInfo") > 4 and not listings


def test_a_trigger_run_by_hand_leaves_no_unclosed_session(kie_emulator):
    # A script (or `airflow dags test`) runs a trigger in a loop that then ends: at exit, aiohttp
    # reports any session nobody closed as an error. The last hook of the loop closes the shared one.
    kie_task_id = KieHook().create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
    script = f"""
import asyncio, gc
from airflow_provider_kie.events import Job, JobRecord, JobRef
from airflow_provider_kie.triggers.jobs import KieJobsTrigger

async def main():
    record = JobRecord({{0: JobRef("{kie_task_id}", 9e9)}})
    trigger = KieJobsTrigger(jobs=[Job()], record=record, timeout=60, single=True, poll_policy={FAST!r})
    print([event.payload["outcomes"][0]["status"] async for event in trigger.run()])

asyncio.run(main())
gc.collect()
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "['success']" in result.stdout
    assert "Unclosed" not in result.stderr and "Unclosed" not in result.stdout
