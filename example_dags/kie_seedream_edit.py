"""Edit one image with Seedream 4.5 on Kie.ai, wait in the triggerer, then save the result locally.

Runs against real Kie when connection ``kie_default`` holds an API key, or against the emulator
(``python -m airflow_provider_kie.emulator``) with no key and no spend.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_kie.operators.seedream import SeedreamEditOperator

PROMPT = (
    "Keep the model's pose and the flowing shape of the liquid dress unchanged. Change the clothing "
    "material from silver metal to completely transparent clear water (or glass). Through the liquid "
    "water, the model's skin details are visible. Lighting changes from reflection to refraction."
)
IMAGE_URL = "https://static.aiquickdraw.com/tools/example/1764851484363_ScV1s2aq.webp"

with DAG(
    dag_id="kie_seedream_edit",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["kie", "example"],
) as dag:
    edit = SeedreamEditOperator(
        task_id="edit_image",
        prompt=PROMPT,
        image_urls=[IMAGE_URL],
        aspect_ratio="1:1",
        quality="basic",
        deferrable=True,
        poll_interval=float(os.environ.get("KIE_POLL_INTERVAL", "3")),
        timeout=timedelta(minutes=15),
    )

    @task
    def save_result(urls: list[str], run_id: str | None = None) -> str:
        """Download the first result (Kie keeps it about 24 hours) into KIE_OUTPUT_DIR."""
        folder = Path(os.environ.get("KIE_OUTPUT_DIR") or Path(tempfile.gettempdir()) / "kie-output")
        folder.mkdir(parents=True, exist_ok=True)
        safe_run = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(run_id))
        target = folder / f"kie_seedream_edit-{safe_run}{Path(urls[0].split('?')[0]).suffix or '.png'}"
        with urllib.request.urlopen(urls[0], timeout=60) as response:  # noqa: S310 - Kie result URLs are https
            target.write_bytes(response.read())
        print(f"Saved the edited image to {target}")
        return str(target)

    save_result(edit.output)
