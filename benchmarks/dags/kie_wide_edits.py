"""benchmarks/callbacks.py: KIE_WIDE_TASKS Seedream edits as separate (not mapped) deferrable tasks, so
Airflow 3.3 starts each in the triggerer and they all wait there at once, with no worker."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_kie.operators.seedream import SeedreamEditOperator

with DAG(dag_id="kie_wide_edits", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    for i in range(int(os.environ.get("KIE_WIDE_TASKS", "3"))):
        SeedreamEditOperator(
            task_id=f"edit_{i:04d}",
            prompt=f"Variation {i} of the dress",
            image_urls=["https://static.aiquickdraw.com/tools/example/1764851484363_ScV1s2aq.webp"],
            deferrable=True,
            timeout=timedelta(hours=1),
            retries=0,
        )
