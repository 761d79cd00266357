"""KieTaskSensor against the emulator: poke, reschedule and deferrable, one wait decision with the trigger."""

from __future__ import annotations

import json
import time

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_kie import models
from airflow_provider_kie.events import JobRecord
from airflow_provider_kie.exceptions import KieTaskFailedError
from airflow_provider_kie.hooks.kie import KieHook
from airflow_provider_kie.sensors.kie import KieTaskSensor
from tests.support import AIRFLOW_3, EDIT_INPUT, FakeTI

pytestmark = pytest.mark.usefixtures("fast_kie")


def context():
    return {"ti": FakeTI()}


class TestSensor:
    def test_poke_until_done(self, kie_emulator):
        task_id = KieHook().create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
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
        (ref,) = JobRecord.from_dict(json.loads(kwargs["record"])).jobs.values()
        assert ref.kie_task_id == "abc" and kwargs["poll_policy"]["initial_interval"] == 2
        assert time.time() + 590 < ref.deadline <= time.time() + 600

    def test_failed_task_fails_sensor(self, kie_emulator):
        task_id = KieHook().create_task(models.SEEDREAM_EDIT_MODEL, {**EDIT_INPUT, "prompt": "[fail]"})
        time.sleep(0.3)
        with pytest.raises(KieTaskFailedError):
            KieTaskSensor(task_id="wait", kie_task_id=task_id, timeout=30).poke(context())

    @pytest.mark.skipif(
        not AIRFLOW_3, reason="Airflow 2 cannot tell a rescheduled sensor when it first poked"
    )
    def test_unknown_task_fails_a_rescheduled_sensor_after_the_grace(self, kie_emulator):
        # Waiting for an id Kie never knew: the trigger and the operator give up after not_found_grace,
        # and so must a sensor in reschedule mode that has poked for longer than that.
        sensor = KieTaskSensor(task_id="wait", kie_task_id="f" * 32, mode="reschedule", timeout=3600)
        ti = FakeTI()
        ti.get_first_reschedule_date = lambda context: pendulum.now("UTC").subtract(minutes=2)
        with pytest.raises(AirflowFailException, match="unknown to this API key"):
            sensor.execute({"ti": ti})
        assert kie_emulator.count("recordInfo") == 1

    def test_a_task_not_visible_yet_is_not_a_failure(self, kie_emulator):
        sensor = KieTaskSensor(task_id="wait", kie_task_id="f" * 32, poke_interval=0.05, timeout=30)
        assert sensor.poke(context()) is False
