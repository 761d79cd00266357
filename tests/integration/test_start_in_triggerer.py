"""Which Kie tasks start in the triggerer (Airflow >= 3.3), and what KieStartTrigger does with the fields
Airflow rendered there: create and wait, fail bad input with no request, or hand over to a worker."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import DAG, TaskDeferred

from airflow_provider_kie.compat import TRIGGER_STARTS_TASKS
from airflow_provider_kie.operators.kie import KieCreateTaskOperator
from airflow_provider_kie.operators.seedream import SeedreamEditOperator
from airflow_provider_kie.triggers.start import KieStartTrigger
from tests.support import AIRFLOW_33, EXAMPLES, FakeTI

pytestmark = pytest.mark.usefixtures("fast_kie")
URL = "https://a/b.png"


def edit(**kwargs):
    return SeedreamEditOperator(
        **{"task_id": "edit", "prompt": "Make it water", "image_urls": [URL], "deferrable": True, **kwargs}
    )


def start_trigger(operator, **rendered):
    """The trigger Airflow would start for ``operator``, with its fields as the triggerer rendered them."""
    kwargs = {**operator.start_trigger_args.trigger_kwargs, **rendered}
    return KieStartTrigger(**kwargs)


def test_start_in_the_triggerer_is_airflow_3_3_and_later_only():
    assert TRIGGER_STARTS_TASKS is AIRFLOW_33
    assert edit().start_from_trigger is AIRFLOW_33


@pytest.mark.skipif(not AIRFLOW_33, reason="Airflow starts tasks in the triggerer from 3.3")
class TestWhichTasksStartInTheTriggerer:
    def test_a_templated_deferrable_edit_does(self):
        operator = edit(prompt="{{ params.p }}", output_path="/tmp/kie-out")
        args = operator.start_trigger_args
        assert operator.start_from_trigger and args.next_method == "execute_complete"
        assert args.trigger_cls == "airflow_provider_kie.triggers.start.KieStartTrigger"
        assert args.trigger_kwargs["prompt"] == "{{ params.p }}"  # rendered by the triggerer
        assert args.trigger_kwargs["output_path"] == "/tmp/kie-out"

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ({"deferrable": False}, "only deferrable tasks"),
            ({"wait_for_completion": False}, "only deferrable tasks"),
            ({"image_urls": [str(EXAMPLES / "sample.png")]}, "its input names files"),
            ({"on_execute_callback": print}, "on_execute_callback"),
        ],
    )
    def test_what_needs_a_worker_does_not(self, change, reason):
        operator = edit(**change)
        assert not operator.start_from_trigger and operator.start_trigger_args is None
        assert reason in operator._worker_reason

    def test_an_argument_from_an_upstream_task_does_not(self):
        from airflow.providers.common.compat.sdk import task

        with DAG("kie_start", schedule=None, start_date=datetime(2026, 1, 1)):

            @task
            def prompt() -> str:
                return "Make it water"

            operator = edit(prompt=prompt())
        assert not operator.start_from_trigger and "upstream task" in operator._worker_reason

    def test_a_subclass_that_overrides_execute_does_not(self):
        class Custom(KieCreateTaskOperator):
            def execute(self, context):
                return super().execute(context)

        operator = Custom(task_id="c", model="m/x", input={"a": 1}, deferrable=True)
        assert not operator.start_from_trigger and "overrides execute" in operator._worker_reason

    def test_a_batch_with_nothing_for_a_worker_does_and_one_with_files_does_not(self):
        from airflow_provider_kie.operators.batch import SeedreamEditBatchOperator

        batch = SeedreamEditBatchOperator(
            task_id="b", edits=["{{ params.p }}", "two"], image_urls=[URL], deferrable=True
        )
        assert (
            batch.start_from_trigger
            and batch.start_trigger_args.trigger_kwargs["edits"][0] == "{{ params.p }}"
        )
        local = SeedreamEditBatchOperator(
            task_id="b", edits=["one", {"image_urls": [str(EXAMPLES / "sample.png")]}], deferrable=True
        )
        assert not local.start_from_trigger and "files" in local._worker_reason

    def test_mapped_tasks_keep_starting_on_a_worker(self):
        with DAG("kie_start_mapped", schedule=None, start_date=datetime(2026, 1, 1)):
            mapped = SeedreamEditOperator.partial(task_id="edit", image_urls=[URL], deferrable=True).expand(
                prompt=["a", "b"]
            )
        assert not mapped.start_from_trigger and not mapped.start_trigger_args


@pytest.mark.skipif(not AIRFLOW_33, reason="Airflow starts tasks in the triggerer from 3.3")
class TestKieStartTrigger:
    def test_rendered_fields_are_validated_created_and_waited_for(self, kie_emulator, triggerer_xcom):
        trigger = start_trigger(edit(prompt="{{ params.p }}"), prompt="Make it glass")
        assert trigger.serialize()[1]["prompt"] == "Make it glass"
        triggerer_xcom.run_in_triggerer(trigger)
        ((_, task),) = kie_emulator.state.tasks.items()
        assert task.body["input"]["prompt"] == "Make it glass" and kie_emulator.count("createTask") == 1
        assert triggerer_xcom["return_value"] == [f"{kie_emulator.url}/files/results/{task.task_id}.png"]

    def test_a_batch_started_in_the_triggerer_creates_every_job_there(self, kie_emulator, triggerer_xcom):
        from airflow_provider_kie.operators.batch import SeedreamEditBatchOperator

        operator = SeedreamEditBatchOperator(
            task_id="b", edits=["{{ params.p }}", "two"], image_urls=[URL], deferrable=True
        )
        triggerer_xcom.run_in_triggerer(start_trigger(operator, edits=["one", "two"]))
        assert sorted(t.body["input"]["prompt"] for t in kie_emulator.state.tasks.values()) == ["one", "two"]
        assert [r["status"] for r in triggerer_xcom["return_value"]] == ["success", "success"]

    def test_bad_input_after_rendering_fails_with_no_request(self, kie_emulator, triggerer_xcom):
        event = triggerer_xcom.run_in_triggerer(start_trigger(edit(prompt="{{ params.p }}"), prompt=""))
        (refused,) = event.payload["outcomes"]
        assert refused["status"] == "error" and "invalid 'prompt'" in refused["error"]
        with pytest.raises(Exception, match="invalid 'prompt'"):
            edit().execute_complete({"ti": FakeTI()}, event.payload)
        assert not kie_emulator.requests

    @pytest.mark.parametrize(
        ("rendered", "try_number", "reason"),
        [
            ({"image_urls": [str(EXAMPLES / "sample.png")]}, 1, "its input names files"),
            ({}, 2, "a retry resumes"),
        ],
        ids=["a file after rendering", "a retry"],
    )
    def test_what_only_a_worker_can_do_is_handed_over(
        self, kie_emulator, triggerer_xcom, rendered, try_number, reason
    ):
        trigger = start_trigger(edit(image_urls=["{{ params.image }}"]), **{"image_urls": [URL], **rendered})
        triggerer_xcom.ti = SimpleNamespace(**{**vars(triggerer_xcom.ti), "try_number": try_number})
        event = triggerer_xcom.run_in_triggerer(trigger)
        assert reason in event.payload["needs_worker"]
        assert not kie_emulator.requests
        with pytest.raises(TaskDeferred):  # the worker runs the task as if it had started there
            edit(image_urls=[URL]).execute_complete({"ti": FakeTI()}, event.payload)
