"""The batch peer: what a user builds today without this provider, from apache-airflow-providers-http.

HttpOperator sends each createTask (a throttled or failed reply fails the task, and Airflow retries
it); HttpSensor in reschedule mode polls recordInfo. HttpSensor's deferrable mode cannot wait for Kie:
its trigger fires on any non-404 reply, and Kie answers HTTP 200 while the task is still generating.
Connection ``kie_http``: host and port of Kie (or the emulator), header ``Authorization`` in the extra.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, AirflowException, AirflowFailException
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor

IMAGE_URL = "https://static.aiquickdraw.com/tools/example/1764851484363_ScV1s2aq.webp"
BODIES = [
    json.dumps(
        {
            "model": "seedream/4.5-edit",
            "input": {
                "prompt": f"Turn the dress into clear water. Variation {i}.",
                "image_urls": [IMAGE_URL],
                "aspect_ratio": "3:4",
                "quality": "basic",
            },
        }
    )
    for i in range(int(os.environ.get("KIE_BATCH_SIZE", "3")))
]


def task_id_of(response):
    body = response.json()
    if body.get("code") != 200:  # Kie reports errors, 429 included, in the body of an HTTP 200
        raise AirflowException(f"Kie createTask: {body.get('code')} {body.get('msg')}")
    return body["data"]["taskId"]


def finished(response):
    body = response.json()
    if body.get("code") != 200:  # "recordInfo is null" right after creation, or throttled
        return False
    state = body["data"]["state"]
    if state == "fail":
        raise AirflowFailException(f"Kie task failed: {body['data'].get('failMsg')}")
    return state == "success"


with DAG(
    dag_id="kie_http_peer_batch",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["benchmark"],
) as dag:
    created = HttpOperator.partial(
        task_id="create",
        http_conn_id="kie_http",
        endpoint="api/v1/jobs/createTask",
        method="POST",
        headers={"Content-Type": "application/json"},
        response_filter=task_id_of,
        retries=30,
        retry_delay=timedelta(seconds=5),
    ).expand(data=BODIES)

    HttpSensor.partial(
        task_id="wait",
        http_conn_id="kie_http",
        endpoint="api/v1/jobs/recordInfo",
        method="GET",
        response_check=finished,
        mode="reschedule",
        poke_interval=5,
        timeout=900,
        # Airflow 3.3.2 can fail a rescheduled sensor when the previous poke's exit is reported after
        # the next poke was queued ("task state changed externally"); a user adds retries.
        retries=5,
        retry_delay=timedelta(seconds=5),
    ).expand(request_params=created.output.map(lambda task_id: {"taskId": task_id}))
