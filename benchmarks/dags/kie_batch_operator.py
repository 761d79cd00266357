"""The same edits as kie_seedream_batch, as one SeedreamEditBatchOperator task: one worker run validates
and defers, one trigger creates and waits for every edit and ends the task. The batch benchmark's
``batch`` variant."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_kie.operators.batch import SeedreamEditBatchOperator

IMAGE_URL = "https://static.aiquickdraw.com/tools/example/1764851484363_ScV1s2aq.webp"

with DAG(
    dag_id="kie_batch_operator",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["benchmark"],
) as dag:
    SeedreamEditBatchOperator(
        task_id="edits",
        edits=[
            f"Turn the dress into clear water. Variation {i}."
            for i in range(int(os.environ.get("KIE_BATCH_SIZE", "3")))
        ],
        image_urls=[IMAGE_URL],
        aspect_ratio="3:4",
        deferrable=True,
        poll_interval=float(os.environ.get("KIE_POLL_INTERVAL", "3")),
        timeout=timedelta(minutes=30),
    )
