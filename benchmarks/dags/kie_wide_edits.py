"""benchmarks/callbacks.py: KIE_WIDE_TASKS Seedream edits as separate (not mapped) deferrable tasks, so
Airflow 3.3 starts each in the triggerer and they all wait there at once, with no worker; split over
KIE_WIDE_DAGS DAGs (``kie_wide_edits_00``, ...), since Airflow sends each such task's trigger its whole
serialized DAG (docs/benchmarks.md#callbacks)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_kie.operators.seedream import SeedreamEditOperator

TASKS = int(os.environ.get("KIE_WIDE_TASKS", "3"))
DAGS = int(os.environ.get("KIE_WIDE_DAGS", "1"))

for d in range(DAGS):
    dag_id = f"kie_wide_edits_{d:02d}"
    with DAG(dag_id=dag_id, start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
        for i in range(d, TASKS, DAGS):
            SeedreamEditOperator(
                task_id=f"edit_{i:04d}",
                prompt=f"Variation {i} of the dress",
                image_urls=["https://static.aiquickdraw.com/tools/example/1764851484363_ScV1s2aq.webp"],
                deferrable=True,
                timeout=timedelta(hours=1),
                retries=0,
            )
    globals()[dag_id] = dag
