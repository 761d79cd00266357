"""A person approves a generated image in Airflow's UI before it is published (Airflow 3.3's
human-in-the-loop operators).

``edit`` makes the image with Seedream 4.5 and stores it; ``approve`` shows it in the task's Required
Actions form, with the prompt, and waits for Approve or Reject; only on Approve does ``publish`` copy it
to ``$KIE_OUTPUT_DIR/published``. The image in the form is the stored copy, served by the provider's
``/kie`` plugin behind Airflow's login (Kie's own URL would expire); on Reject ``publish`` is skipped.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, ObjectStoragePath, task

from airflow_provider_kie.operators.seedream import SeedreamEditOperator

try:  # Airflow >= 3.1
    from airflow.providers.standard.operators.hitl import ApprovalOperator
except ImportError:  # Airflow 2: no human-in-the-loop operators, so no DAG here
    ApprovalOperator = None

OUTPUT_DIR = Path(os.environ.get("KIE_OUTPUT_DIR") or Path(tempfile.gettempdir()) / "kie-output")
PROMPT = "The dress in deep red silk, evening light, same pose."
IMAGE_URL = "https://static.aiquickdraw.com/tools/example/1764851484363_ScV1s2aq.webp"
# The stored result as the plugin's gallery serves it: a relative URL, so the UI resolves it under
# Airflow's own base URL and the browser sends its login with it.
STORED_IMAGE = (
    "kie/gallery/image?dag_id={{ dag.dag_id }}&run_id={{ run_id | urlencode }}&task_id=edit&index=0"
)

if ApprovalOperator is not None:
    with DAG(
        dag_id="kie_human_approval",
        start_date=datetime(2026, 1, 1),
        schedule=None,
        catchup=False,
        tags=["kie", "example"],
    ) as dag:
        edit = SeedreamEditOperator(
            task_id="edit",
            prompt=PROMPT,
            image_urls=[IMAGE_URL],
            output_path=f"file://{OUTPUT_DIR}/approval/{{{{ run_id }}}}",
            deferrable=True,
            poll_interval=float(os.environ.get("KIE_POLL_INTERVAL", "3")),
            timeout=timedelta(minutes=15),
        )
        approve = ApprovalOperator(
            task_id="approve",
            subject="Publish this image?",
            body=f"![The generated image]({STORED_IMAGE})\n\n**Prompt:** {PROMPT}",
            execution_timeout=timedelta(days=1),
        )

        @task
        def publish(stored: list[str]) -> list[str]:
            """Copy each approved result to the published folder."""
            target = ObjectStoragePath(f"file://{OUTPUT_DIR}/published")
            target.mkdir(parents=True, exist_ok=True)
            published = []
            for uri in stored:
                source = ObjectStoragePath(uri)
                destination = target / source.name
                source.copy(destination)
                published.append(str(destination))
            return published

        approve >> publish(edit.output)
        edit >> approve
