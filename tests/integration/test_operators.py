"""Operators, trigger and sensor against the emulator, outside a scheduler (context built by hand)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, Asset, TaskDeferred
from airflow.triggers.base import TaskSuccessEvent

from airflow_provider_kie import links, models
from airflow_provider_kie import waiting as waiting_module
from airflow_provider_kie.callbacks import receiver_url
from airflow_provider_kie.compat import TRIGGER_WRITES_XCOM
from airflow_provider_kie.events import Job, JobRecord
from airflow_provider_kie.exceptions import KieTaskFailedError
from airflow_provider_kie.links import KieResultLink
from airflow_provider_kie.operators import base as base_operators
from airflow_provider_kie.operators.kie import KieCreateTaskOperator
from airflow_provider_kie.operators.seedream import SeedreamEditOperator, SeedreamTextToImageOperator
from airflow_provider_kie.testing import EMULATOR_API_KEY
from airflow_provider_kie.triggers.jobs import KieJobsTrigger
from airflow_provider_kie.waiting import PollPolicy
from tests.support import AIRFLOW_33, EDIT_INPUT, DictStateStore, FakeTI

pytestmark = pytest.mark.usefixtures("fast_kie")

CREATE_BODY = {"model": models.SEEDREAM_EDIT_MODEL, "input": EDIT_INPUT}
FAST = PollPolicy(initial_interval=0.05, backoff=0).to_dict()


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


class TestOperator:
    def test_waits_in_worker_and_returns_urls(self, kie_emulator, monkeypatch):
        operator = edit_operator(deferrable=False)
        ctx = {**context(), "task": operator}
        urls = operator.execute(ctx)
        (task_id,) = kie_emulator.state.tasks
        assert urls == [f"{kie_emulator.url}/files/results/{task_id}.png"]
        assert ctx["ti"].xcom["kie_task_id"] == task_id
        assert ctx["ti"].xcom["kie_task"]["state"] == "success"
        # Airflow 3 renders the link with the operator that ran, without reading XCom back.
        monkeypatch.setattr(links.XCom, "get_value", None)
        assert KieResultLink().get_link(operator, ti_key=None) == urls[0]
        assert KieResultLink().get_link(edit_operator(), ti_key=None) == ""  # deferred, no result yet

    def test_result_link_reads_the_record_for_a_serialized_operator(self, monkeypatch):
        records = {"kie_task": {"result_urls": ["https://r/1.png", "https://r/2.png"]}}
        monkeypatch.setattr(links.XCom, "get_value", lambda *, ti_key, key: records.get(key))
        assert KieResultLink().get_link(object(), ti_key="try") == "https://r/1.png"
        records.clear()
        assert KieResultLink().get_link(object(), ti_key="try") == ""

    @pytest.mark.skipif(not TRIGGER_WRITES_XCOM, reason="Airflow 2: the worker creates the task")
    def test_defers_to_the_triggerer_to_create_with_only_json_safe_kwargs(self, kie_emulator):
        operator = edit_operator(deferrable=True, timeout=timedelta(minutes=5), callback_url="https://cb/x")
        with pytest.raises(TaskDeferred) as info:
            operator.execute(context())
        assert kie_emulator.count("createTask") == 0  # validated on the worker, created in the triggerer
        classpath, kwargs = info.value.trigger.serialize()
        assert classpath == "airflow_provider_kie.triggers.jobs.KieJobsTrigger"
        (job,) = [Job.from_dict(j) for j in json.loads(kwargs["jobs"])]
        assert job.body == {
            "model": "seedream/4.5-edit",
            "callBackUrl": "https://cb/x",
            "input": {"prompt": "Make it water", "image_urls": ["https://a/b.png"], "aspect_ratio": "1:1",
                      "quality": "basic"},
        }  # fmt: skip
        assert kwargs["timeout"] == 300 and kwargs["single"] and kwargs["end_from_trigger"] is True
        assert JobRecord.from_dict(json.loads(kwargs["record"])) == JobRecord()
        assert EMULATOR_API_KEY not in json.dumps(kwargs)
        assert KieJobsTrigger(**json.loads(json.dumps(kwargs))).serialize() == (classpath, kwargs)
        assert info.value.method_name == "execute_complete"

    @pytest.mark.skipif(TRIGGER_WRITES_XCOM, reason="Airflow 3: the triggerer creates the task")
    def test_creates_then_defers_with_only_json_safe_kwargs(self, kie_emulator):
        operator = edit_operator(deferrable=True, timeout=timedelta(minutes=5))
        started = time.time()
        with pytest.raises(TaskDeferred) as info:
            operator.execute(context())
        classpath, kwargs = info.value.trigger.serialize()
        assert classpath == "airflow_provider_kie.triggers.jobs.KieJobsTrigger"
        (ref,) = JobRecord.from_dict(json.loads(kwargs["record"])).jobs.values()  # the trigger only waits
        assert ref.kie_task_id in kie_emulator.state.tasks and kwargs["end_from_trigger"] is True
        assert started + 300 <= ref.deadline <= time.time() + 300
        assert EMULATOR_API_KEY not in json.dumps(kwargs)

    @pytest.mark.parametrize(
        ("extra", "ends_in_triggerer"),
        [
            ({}, True),
            ({"outlets": [Asset("kie://results")]}, False),
            ({"on_success_callback": print}, False),
            ({"output_path": "/tmp/kie-results"}, True),  # the triggerer copies the results
            ({"end_from_trigger": False}, False),
        ],
        ids=["plain", "outlets", "success callback", "output_path", "end_from_trigger=False"],
    )
    def test_a_task_needing_a_worker_at_success_resumes_on_one(self, kie_emulator, extra, ends_in_triggerer):
        # Airflow records asset events and runs success callbacks only when a worker finishes the task.
        operator = edit_operator(deferrable=True, **extra)
        with pytest.raises(TaskDeferred) as info:
            operator.execute(context())
        assert info.value.trigger.serialize()[1]["end_from_trigger"] is ends_in_triggerer

    @pytest.mark.parametrize("store", [None, "task state store"])
    def test_a_fresh_run_reads_and_pushes_its_result_once(self, kie_emulator, store):
        ctx = context(DictStateStore() if store else None)
        pushed = []
        push = ctx["ti"].xcom_push
        ctx["ti"].xcom_push = lambda key, value: (pushed.append(key), push(key, value))
        edit_operator().execute(ctx)
        assert sorted(pushed) == ["kie_task", "kie_task_id"]  # return_value is Airflow's to push

    def test_wait_for_completion_false_returns_task_id(self, kie_emulator):
        ctx = context()
        result = edit_operator(wait_for_completion=False).execute(ctx)
        assert result == ctx["ti"].xcom["kie_task_id"] == next(iter(kie_emulator.state.tasks))
        assert kie_emulator.count("recordInfo") == 0

    def test_a_task_not_waited_for_calls_back_for_a_sensor_to_await(self, kie_emulator, calling_back):
        ctx = context()
        kie_task_id = edit_operator(wait_for_completion=False).execute(ctx)
        url = kie_emulator.state.tasks[kie_task_id].body["callBackUrl"]
        assert url.startswith(receiver_url(calling_back)) and "?token=" in url
        assert EMULATOR_API_KEY not in url

    def test_a_wait_on_a_worker_sends_no_callback(self, kie_emulator, calling_back):
        edit_operator(deferrable=False).execute(context())
        (task,) = kie_emulator.state.tasks.values()
        assert "callBackUrl" not in task.body  # a worker's wait polls; nothing would listen

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

    def test_every_argument_a_user_may_template_is_rendered(self):
        operator = SeedreamEditOperator(
            task_id="edit",
            prompt="{{ params.prompt }}",
            image_urls=["{{ params.image }}"],
            aspect_ratio="{{ params.ratio }}",
            quality="{{ params.quality }}",
            callback_url="{{ params.callback }}",
            output_path="{{ params.folder }}",
        )
        params = {
            "prompt": "Make it water",
            "image": "s3://aws@b/in.png",
            "ratio": "4:3",
            "quality": "high",
            "callback": "https://hooks.example.com/kie",
            "folder": "s3://aws@b/out",
        }
        operator.render_template_fields({"params": params})
        rendered = {
            "prompt": operator.prompt,
            "image": operator.image_urls[0],
            "ratio": operator.aspect_ratio,
            "quality": operator.quality,
            "callback": operator.callback_url,
            "folder": operator.output_path,
        }
        assert rendered == params


@pytest.mark.skipif(not AIRFLOW_33, reason="task_state_store arrived in Airflow 3.3")
class TestResume:
    @pytest.mark.fault(
        fault="worker killed after createTask, before the wait",
        where="worker (non-deferrable)",
        expected="retry resumes the same Kie task",
    )
    def test_retry_after_crash_between_create_and_wait_resumes(self, kie_emulator, monkeypatch):
        store = DictStateStore()

        async def worker_dies(*args, **kwargs):
            raise SystemExit("worker killed")

        with monkeypatch.context() as patch, pytest.raises(SystemExit):
            patch.setattr(waiting_module, "wait_async", worker_dies)
            patch.setattr("airflow_provider_kie.jobs.wait_async", worker_dies)
            edit_operator(deferrable=False).execute(context(store))
        (kie_task_id,) = kie_emulator.state.tasks
        assert store["kie_jobs.0"]["jobs"]["0"]["kie_task_id"] == kie_task_id  # kept as it came
        retry = context(store)
        urls = edit_operator(deferrable=False).execute(retry)
        assert kie_emulator.count("createTask") == 1
        assert urls == retry["ti"].xcom["kie_task"]["result_urls"]

    @pytest.mark.fault(
        fault="worker killed between a non-deferrable task's createTask and its reply",
        where="worker (non-deferrable, single task and batch)",
        expected="the create was marked before it left: the retry reports an ambiguous create, no second createTask",
    )
    @pytest.mark.parametrize("kind", ["single", "batch"])
    def test_a_worker_killed_mid_create_leaves_a_retry_that_reports_it(self, kie_emulator, monkeypatch, kind):
        from airflow_provider_kie.operators.batch import KieBatchOperator

        def operator():
            if kind == "single":
                return edit_operator(deferrable=False)
            return KieBatchOperator(
                task_id="b", model=models.SEEDREAM_EDIT_MODEL, inputs=[EDIT_INPUT], poll_interval=0.05
            )

        store = DictStateStore()
        kie_emulator.add_fault("drop-after", "createTask")  # Kie creates the task; the reply never comes
        with monkeypatch.context() as patch, pytest.raises(SystemExit):

            def killed(self, *args, **kwargs):  # the worker dies as the reply is lost
                raise SystemExit("worker killed")

            patch.setattr("airflow_provider_kie.hooks.kie.KieAsyncHook._retry_delay", killed)
            operator().execute(context(store))
        assert len(kie_emulator.state.tasks) == 1 and store["kie_jobs.0"]["sent"] == {
            "0": store["kie_jobs_owner"]["by"]
        }
        with pytest.raises(AirflowFailException, match="was not sent again"):
            operator().execute(context(store))
        assert kie_emulator.count("createTask") == 1

    @pytest.mark.fault(
        fault="worker lost while resuming after the trigger",
        where="worker (deferrable)",
        expected="the retry returns the same Kie task's result, no new createTask",
    )
    def test_retry_after_resume_is_lost_reuses_the_kie_task(self, kie_emulator, triggerer_xcom):
        store = DictStateStore()
        operator = edit_operator(deferrable=True, end_from_trigger=False)
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context(store))
        event = triggerer_xcom.run_in_triggerer(deferred.value.trigger)
        lost = context(store)
        lost["ti"].xcom_push = None  # the worker dies while pushing the result
        with pytest.raises(TypeError):
            operator.execute_complete(lost, event.payload)
        retry = context(store)
        with pytest.raises(TaskDeferred) as again:  # it waits for the Kie task the first try created
            edit_operator(deferrable=True).execute(retry)
        resumed = triggerer_xcom.run_in_triggerer(again.value.trigger)
        assert isinstance(resumed, TaskSuccessEvent) and kie_emulator.count("createTask") == 1
        (done,) = event.payload["outcomes"]
        assert triggerer_xcom["return_value"] == done["result_urls"]

    @pytest.mark.fault(
        fault="deferred task retried while its Kie task runs",
        where="worker (deferrable)",
        expected="same Kie task, same deadline",
    )
    def test_retry_of_deferred_task_defers_on_the_same_kie_task(self, kie_emulator, monkeypatch):
        store = DictStateStore()
        kie_emulator.config.generating_seconds = 30
        with monkeypatch.context() as patch:  # as on Airflow 2: created on the worker
            patch.setattr(base_operators, "TRIGGER_WRITES_XCOM", False)
            with pytest.raises(TaskDeferred) as first:
                edit_operator(deferrable=True).execute(context(store))
        with pytest.raises(TaskDeferred) as second:
            edit_operator(deferrable=True).execute(context(store))
        assert kie_emulator.count("createTask") == 1
        first_kwargs, second_kwargs = (d.value.trigger.serialize()[1] for d in (first, second))
        records = [
            JobRecord.from_dict(json.loads(kwargs["record"])) for kwargs in (first_kwargs, second_kwargs)
        ]
        assert records[0] == records[1] and len(records[0].jobs) == 1  # same task, same deadline

    def test_retry_after_kie_failure_submits_again(self, kie_emulator):
        store = DictStateStore()
        with pytest.raises(KieTaskFailedError):
            edit_operator(prompt="[fail] x").execute(context(store))
        with pytest.raises(KieTaskFailedError):
            edit_operator(prompt="[fail] x").execute(context(store))
        assert kie_emulator.count("createTask") == 2
