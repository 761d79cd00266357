"""A mapped batch of Seedream 4.5 edits: one Kie task per prompt, all waiting in the triggerer."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_kie.operators.seedream import SeedreamEditOperator

IMAGE_URL = "https://static.aiquickdraw.com/tools/example/1764851484363_ScV1s2aq.webp"
PROMPTS = [
    "Make the dress out of clear water, lit from behind.",
    "Turn the dress into polished gold leaf.",
    "Render the scene as a pencil sketch.",
]
# benchmarks/batch.py runs the same DAG with more prompts.
if (size := int(os.environ.get("KIE_BATCH_SIZE", "0"))) > len(PROMPTS):
    PROMPTS = [f"{PROMPTS[i % 3]} Variation {i}." for i in range(size)]

with DAG(
    dag_id="kie_seedream_batch",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["kie", "example"],
) as dag:
    edits = SeedreamEditOperator.partial(
        task_id="edit",
        # A URL, or a file (KIE_INPUT_IMAGE=example_dags/sample.png): uploaded once for the whole batch.
        image_urls=[os.environ.get("KIE_INPUT_IMAGE") or IMAGE_URL],
        aspect_ratio="3:4",
        deferrable=True,
        poll_interval=float(os.environ.get("KIE_POLL_INTERVAL", "3")),
        timeout=timedelta(minutes=15),
    ).expand(prompt=PROMPTS)

    @task
    def collect(results: list[list[str]]) -> list[str]:
        """One URL per prompt, in prompt order."""
        return [urls[0] for urls in results]

    collect(edits.output)
