"""benchmarks/distributed.py and the distributed system test: KIE_BATCH_SIZE mapped Seedream edits,
deferrable (created and awaited in the triggerers) unless KIE_DEFERRABLE=false (created and awaited in
the workers' slots)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_kie.operators.seedream import SeedreamEditOperator

with DAG(dag_id="kie_sharing_batch", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    SeedreamEditOperator.partial(
        task_id="edit",
        image_urls=["https://static.aiquickdraw.com/tools/example/1764851484363_ScV1s2aq.webp"],
        deferrable=os.environ.get("KIE_DEFERRABLE", "true") != "false",
        poll_interval=float(os.environ.get("KIE_POLL_INTERVAL", "3")),
        timeout=timedelta(minutes=30),
        retries=0,
    ).expand(
        prompt=[f"Variation {i} of the dress" for i in range(int(os.environ.get("KIE_BATCH_SIZE", "3")))]
    )
