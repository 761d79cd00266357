"""Create a Kie task without waiting, then wait for it with KieTaskSensor (deferrable)."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_kie.operators.kie import KieCreateTaskOperator
from airflow_provider_kie.sensors.kie import KieTaskSensor

with DAG(
    dag_id="kie_task_sensor",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["kie", "example"],
) as dag:
    create = KieCreateTaskOperator(
        task_id="create",
        model="seedream/4.5-text-to-image",
        input={"prompt": "A lighthouse at dawn, watercolour", "aspect_ratio": "16:9", "quality": "basic"},
        wait_for_completion=False,
    )
    wait = KieTaskSensor(
        task_id="wait",
        kie_task_id=create.output,
        deferrable=True,
        poke_interval=float(os.environ.get("KIE_POLL_INTERVAL", "3")),
        timeout=15 * 60,
    )
