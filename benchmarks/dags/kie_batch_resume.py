"""kie_seedream_batch with end_from_trigger=False: each success resumes execute_complete on a worker.
The batch benchmark runs it to measure what ending in the triggerer saves."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_kie.operators.seedream import SeedreamEditOperator

IMAGE_URL = "https://static.aiquickdraw.com/tools/example/1764851484363_ScV1s2aq.webp"

with DAG(
    dag_id="kie_batch_resume",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["benchmark"],
) as dag:
    SeedreamEditOperator.partial(
        task_id="edit",
        image_urls=[IMAGE_URL],
        aspect_ratio="3:4",
        deferrable=True,
        end_from_trigger=False,
        poll_interval=float(os.environ.get("KIE_POLL_INTERVAL", "3")),
        timeout=timedelta(minutes=15),
    ).expand(
        prompt=[
            f"Turn the dress into clear water. Variation {i}."
            for i in range(int(os.environ.get("KIE_BATCH_SIZE", "3")))
        ]
    )
