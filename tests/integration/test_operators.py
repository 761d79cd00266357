"""Operators, trigger and sensor against the emulator, outside a scheduler (context built by hand)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from airflow.triggers.base import TaskSuccessEvent

from airflow_provider_kie import api
from airflow_provider_kie.exceptions import KieTaskFailedError
from airflow_provider_kie.hooks.limits import close_shared_async_sessions
from airflow_provider_kie.operators import kie as kie_operators
from airflow_provider_kie.operators.kie import KieCreateTaskOperator
from airflow_provider_kie.operators.seedream import SeedreamEditOperator, SeedreamTextToImageOperator
from airflow_provider_kie.polling import PollPolicy
from airflow_provider_kie.sensors.kie import KieTaskSensor
from airflow_provider_kie.testing import EMULATOR_API_KEY
from airflow_provider_kie.triggers.kie import KieTaskTrigger
from tests.integration.conftest import EDIT_INPUT

AIRFLOW_33 = pytest.importorskip("airflow").__version__ >= "3.3"
FAST = PollPolicy(initial_interval=0.05, backoff=0).to_dict()


class FakeTI:
    """Just enough of a task instance for xcom_push and the resumable mixin's stats tags."""

    stats_tags: dict = {}

    def __init__(self):
        self.xcom: dict = {}

    def xcom_push(self, key, value):
        json.dumps(value)  # XCom must be JSON-safe
        self.xcom[key] = value


class DictStateStore(dict):
    def set(self, key, value, **_):
        self[key] = value


def context(store=None):
    ctx = {"ti": FakeTI()}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


def edit_operator(**kwargs):
    args = {
        "task_id": "edit",
        "prompt": "Make it water",
        "image_urls": ["https://a/b.png"],
        "poll_interval": 0.05,
        **kwargs,
    }
    return SeedreamEditOperator(**args)


@pytest.fixture(autouse=True)
def quick(kie_emulator):
    kie_emulator.config.update({"waiting_seconds": 0.05, "generating_seconds": 0.1, "null_seconds": 0.05})


def run_trigger(trigger):
    async def first():
        events = [event async for event in trigger.run()]
        await close_shared_async_sessions()
        assert len(events) == 1
        return events[0].payload

    return asyncio.run(first())


class TestOperator:
    def test_waits_in_worker_and_returns_urls(self, kie_emulator):
        ctx = context()
        urls = edit_operator(deferrable=False).execute(ctx)
        (task_id,) = kie_emulator.state.tasks
        assert urls == [f"{kie_emulator.url}/files/results/{task_id}.png"]
        assert ctx["ti"].xcom["kie_task_id"] == task_id
        assert ctx["ti"].xcom["kie_task"]["state"] == "success"

    def test_defers_with_only_json_safe_kwargs(self, kie_emulator):
        operator = edit_operator(deferrable=True, timeout=timedelta(minutes=5))
        started = time.time()
        with pytest.raises(TaskDeferred) as info:
            operator.execute(context())
        classpath, kwargs = info.value.trigger.serialize()
        assert classpath == "airflow_provider_kie.triggers.kie.KieTaskTrigger"
        assert set(kwargs) == {"kie_task_id", "kie_conn_id", "poll_policy", "deadline", "end_from_trigger"}
        assert kwargs["end_from_trigger"] is False
        assert started + 300 <= kwargs["deadline"] <= time.time() + 300
        assert EMULATOR_API_KEY not in json.dumps(kwargs)
        assert info.value.method_name == "execute_complete"

    def test_wait_for_completion_false_returns_task_id(self, kie_emulator):
        ctx = context()
        result = edit_operator(wait_for_completion=False).execute(ctx)
        assert result == ctx["ti"].xcom["kie_task_id"] == next(iter(kie_emulator.state.tasks))
        assert kie_emulator.count("recordInfo") == 0

    def test_failed_task_raises_with_code_and_message(self, kie_emulator):
        with pytest.raises(KieTaskFailedError) as info:
            edit_operator(prompt="[fail] x").execute(context())
        assert "500" in str(info.value) and "internal error" in str(info.value)
        assert next(iter(kie_emulator.state.tasks)) in str(info.value)

    @pytest.mark.fault(
        fault="task slower than timeout",
        where="the task",
        expected="clear failure at the deadline, no retries",
    )
    def test_timeout_fails_without_retries(self, kie_emulator):
        kie_emulator.config.generating_seconds = 30
        with pytest.raises(AirflowFailException, match="deadline"):
            edit_operator(timeout=timedelta(seconds=0.3)).execute(context())

    def test_auth_error_fails_without_retries(self, kie_emulator):
        kie_emulator.config.api_keys = ["other"]
        with pytest.raises(AirflowFailException, match="401"):
            edit_operator().execute(context())

    def test_generic_operator_any_model(self, kie_emulator):
        operator = KieCreateTaskOperator(
            task_id="t", model="some/video-model", input={"prompt": "x", "duration": 5}, poll_interval=0.05
        )
        assert operator.execute(context())
        assert kie_emulator.state.tasks[next(iter(kie_emulator.state.tasks))].body["input"]["duration"] == 5

    def test_text_to_image(self, kie_emulator):
        urls = SeedreamTextToImageOperator(
            task_id="t", prompt="a fox", aspect_ratio="21:9", poll_interval=0.05
        ).execute(context())
        assert len(urls) == 1
        (task,) = kie_emulator.state.tasks.values()
        assert task.body == {
            "model": "seedream/4.5-text-to-image",
            "input": {"prompt": "a fox", "aspect_ratio": "21:9", "quality": "basic"},
        }

    def test_template_fields(self):
        assert set(SeedreamEditOperator.template_fields) == {
            "prompt",
            "image_urls",
            "aspect_ratio",
            "quality",
            "callback_url",
        }


@pytest.mark.skipif(not AIRFLOW_33, reason="task_state_store arrived in Airflow 3.3")
class TestResume:
    @pytest.mark.fault(
        fault="worker killed after createTask, before the wait",
        where="worker (non-deferrable)",
        expected="retry resumes the same Kie task",
    )
    def test_retry_after_crash_between_create_and_wait_resumes(self, kie_emulator, monkeypatch):
        store = DictStateStore()

        def worker_dies(*args, **kwargs):
            raise SystemExit("worker killed")

        with monkeypatch.context() as patch, pytest.raises(SystemExit):
            patch.setattr(kie_operators, "wait_for_task", worker_dies)
            edit_operator().execute(context(store))
        assert store["kie_task"]["task_id"] in kie_emulator.state.tasks
        retry = context(store)
        urls = edit_operator().execute(retry)
        assert kie_emulator.count("createTask") == 1
        assert urls == retry["ti"].xcom["kie_task"]["result_urls"]

    @pytest.mark.fault(
        fault="deferred task retried (worker lost after deferring)",
        where="worker (deferrable)",
        expected="same Kie task, same deadline",
    )
    def test_retry_of_deferred_task_defers_on_the_same_kie_task(self, kie_emulator):
        store = DictStateStore()
        kie_emulator.config.generating_seconds = 30
        with pytest.raises(TaskDeferred) as first:
            edit_operator(deferrable=True).execute(context(store))
        with pytest.raises(TaskDeferred) as second:
            edit_operator(deferrable=True).execute(context(store))
        assert kie_emulator.count("createTask") == 1
        assert (
            first.value.trigger.serialize()[1] == second.value.trigger.serialize()[1]
        )  # same task, same deadline

    def test_retry_after_kie_failure_submits_again(self, kie_emulator):
        store = DictStateStore()
        with pytest.raises(KieTaskFailedError):
            edit_operator(prompt="[fail] x").execute(context(store))
        with pytest.raises(KieTaskFailedError):
            edit_operator(prompt="[fail] x").execute(context(store))
        assert kie_emulator.count("createTask") == 2


class TestTrigger:
    def create(self, hook_input=EDIT_INPUT):
        from airflow_provider_kie.hooks.kie import KieHook

        return KieHook().create_task(api.SEEDREAM_EDIT_MODEL, hook_input)

    def test_success_event(self, kie_emulator):
        task_id = self.create()
        event = run_trigger(KieTaskTrigger(task_id, time.time() + 30, poll_policy=FAST))
        assert event["status"] == "success" and event["task"]["result_urls"]
        assert kie_emulator.count("recordInfo") >= 2  # tolerated "recordInfo is null" first

    def test_failed_event(self):
        event = run_trigger(
            KieTaskTrigger(
                self.create({**EDIT_INPUT, "prompt": "[fail]"}), time.time() + 30, poll_policy=FAST
            )
        )
        assert event["status"] == "failed" and event["fail_code"] == "500" and event["fail_msg"]

    def test_timeout_event(self, kie_emulator):
        kie_emulator.config.generating_seconds = 30
        event = run_trigger(KieTaskTrigger(self.create(), time.time() + 0.3, poll_policy=FAST))
        assert event["status"] == "timeout" and "deadline" in event["message"] and event["elapsed"] < 5

    def test_error_event_keeps_class_and_code(self, kie_emulator):
        task_id = self.create()
        kie_emulator.config.api_keys = ["other"]
        event = run_trigger(KieTaskTrigger(task_id, time.time() + 30, poll_policy=FAST))
        assert event["status"] == "error"
        assert event["error"]["error_class"] == "KieAuthError" and event["error"]["code"] == 401

    def test_unknown_task_ends_after_grace(self):
        policy = {**FAST, "not_found_grace": 0.2}
        event = run_trigger(KieTaskTrigger("f" * 32, time.time() + 30, poll_policy=policy))
        assert event["status"] == "error" and event["error"]["error_class"] == "KieNotFoundError"

    def test_end_from_trigger_success_carries_the_xcom(self):
        task_id = self.create()

        async def first():
            trigger = KieTaskTrigger(task_id, time.time() + 30, poll_policy=FAST, end_from_trigger=True)
            events = [event async for event in trigger.run()]
            await close_shared_async_sessions()
            return events

        (event,) = asyncio.run(first())
        assert isinstance(event, TaskSuccessEvent)
        assert (
            event.xcoms["return_value"] == event.xcoms["kie_task"]["result_urls"]
            and event.xcoms["return_value"]
        )

    def test_end_from_trigger_failure_still_resumes_the_worker(self):
        task_id = self.create({**EDIT_INPUT, "prompt": "[fail]"})
        event = run_trigger(
            KieTaskTrigger(task_id, time.time() + 30, poll_policy=FAST, end_from_trigger=True)
        )
        assert event["status"] == "failed"

    def test_serialize_round_trip(self):
        trigger = KieTaskTrigger("abc", 1234.5, "my_conn", FAST)
        classpath, kwargs = trigger.serialize()
        again = KieTaskTrigger(**json.loads(json.dumps(kwargs)))
        assert again.serialize() == (classpath, kwargs)
        assert "abc" in repr(trigger)


class TestSensor:
    def test_poke_until_done(self, kie_emulator):
        from airflow_provider_kie.hooks.kie import KieHook

        task_id = KieHook().create_task(api.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        sensor = KieTaskSensor(task_id="wait", kie_task_id=task_id, poke_interval=0.05, timeout=30)
        ctx = context()
        assert sensor.poke(ctx) is False  # "recordInfo is null" right after creation
        while not (result := sensor.poke(ctx)):
            time.sleep(0.05)
        assert result.xcom_value == ctx["ti"].xcom["kie_task"]["result_urls"]

    def test_deferrable_uses_sensor_timeout_as_deadline(self):
        sensor = KieTaskSensor(
            task_id="wait", kie_task_id="abc", deferrable=True, poke_interval=2, timeout=600
        )
        with pytest.raises(TaskDeferred) as info:
            sensor.execute(context())
        kwargs = info.value.trigger.serialize()[1]
        assert kwargs["kie_task_id"] == "abc" and kwargs["poll_policy"]["initial_interval"] == 2
        assert time.time() + 590 < kwargs["deadline"] <= time.time() + 600

    def test_failed_task_fails_sensor(self, kie_emulator):
        from airflow_provider_kie.hooks.kie import KieHook

        task_id = KieHook().create_task(api.SEEDREAM_EDIT_MODEL, {**EDIT_INPUT, "prompt": "[fail]"})
        time.sleep(0.3)
        with pytest.raises(KieTaskFailedError):
            KieTaskSensor(task_id="wait", kie_task_id=task_id, timeout=30).poke(context())
