"""Kie's callbacks on a real Airflow: the emulator calls the provider's /kie plugin on the API server,
which wakes the waiting triggers; what Kie did not send (a forged signature, no token, another task's
token, a stale timestamp, a replay, an oversized or malformed body, a task nobody waits for) is refused
and wakes nothing; lost callbacks only delay their tasks until the safety-net poll."""

from __future__ import annotations

import json
import secrets
import time

import pytest
import requests

from airflow_provider_kie.callbacks import (
    HINT_PREFIX,
    HINTS_HEADER,
    CallbackTarget,
    callback_token,
    hints_token,
    sign,
)
from tests.support import AIRFLOW_3, REPOSITORY, RealAirflow

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not AIRFLOW_3, reason="the callback receiver is an Airflow 3 plugin"),
]

DAG = REPOSITORY / "benchmarks" / "dags" / "kie_sharing_batch.py"
BATCH_DAG = REPOSITORY / "benchmarks" / "dags" / "kie_batch_operator.py"
API_KEY = "kie-sk-" + secrets.token_hex(16)
WEBHOOK_SECRET = "whk-" + secrets.token_hex(16)
EDITS = 3


def kie_task_ids(airflow: RealAirflow, run_id: str) -> dict[int, str]:
    with airflow.db() as db:
        rows = db.execute(
            "SELECT map_index, value FROM xcom WHERE key = 'kie_task_id' AND run_id = ?", (run_id,)
        ).fetchall()
    return {index: json.loads(value) if isinstance(value, str) else value for index, value in rows}


def hints(airflow: RealAirflow) -> set[str]:
    with airflow.db() as db:
        rows = db.execute("SELECT key FROM variable WHERE key LIKE 'kie_callback.%'").fetchall()
    return {key.removeprefix(HINT_PREFIX) for (key,) in rows}


def latest_run_id(airflow: RealAirflow) -> str | None:
    with airflow.db() as db:
        row = db.execute("SELECT run_id FROM dag_run ORDER BY id DESC").fetchone()
    return row and row[0]


def signed(kie_task_id: str, *, age: float = 0, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    timestamp = str(int(time.time() - age))
    return {
        "Content-Type": "application/json",
        "X-Webhook-Timestamp": timestamp,
        "X-Webhook-Signature": sign(secret, kie_task_id, timestamp),
    }


def body_of(kie_task_id: str) -> str:
    result = json.dumps({"resultUrls": ["https://example.com/forged.png"]})
    data = {"taskId": kie_task_id, "state": "success", "resultJson": result}
    return json.dumps({"code": 200, "msg": "success", "data": data})


@pytest.mark.bad_input(
    parameter="callback to the /kie plugin",
    case="callbacks with a forged signature, no token, another task's token, a stale timestamp, a "
    "replay, an oversized or malformed body, a task nobody waits for: 401, 403, 403, 401, 409, 413, 400, "
    "404, no hint left, nothing woken; a hint listing with no token, a wrong one, an unknown "
    "connection: 403, 403, 404",
)
def test_callbacks_wake_waiting_tasks_and_what_kie_did_not_send_wakes_nothing(tmp_path, kie_emulator):
    # First every callback is lost: the tasks wait for the safety-net poll, and the requests below are
    # the only callbacks the receiver sees.
    kie_emulator.config.update(
        {
            "waiting_seconds": 1,
            "generating_seconds": 4,
            "callback_secret": WEBHOOK_SECRET,
            "callback_drop_rate": 1.0,
        }
    )
    connection = json.loads(kie_emulator.connection_uri(API_KEY))
    dags = {DAG.name: DAG.read_text(), BATCH_DAG.name: BATCH_DAG.read_text()}
    airflow = RealAirflow.with_dags(tmp_path, json.dumps(connection), dags)
    base_url = airflow.call_kie_back(connection, WEBHOOK_SECRET)
    airflow.env.update(
        {
            "KIE_BATCH_SIZE": str(EDITS),
            "KIE_POLL_INTERVAL": "0.5",
            # The lost callbacks' tasks are found by the safety-net poll: sooner than its 60 s default.
            "AIRFLOW__KIE__CALLBACK_SAFETY_NET_INTERVAL": "15",
        }
    )
    airflow.start_all()
    try:
        airflow.trigger_dag("kie_sharing_batch")
        run_id = airflow.wait_for("a run", lambda: latest_run_id(airflow))
        ids = airflow.wait_for("the Kie tasks' ids", lambda: len(kie_task_ids(airflow, run_id)) == EDITS)
        ids = kie_task_ids(airflow, run_id)
        waiting = CallbackTarget("kie_default", "kie_sharing_batch", "edit", run_id, 0)
        neighbour = CallbackTarget("kie_default", "kie_sharing_batch", "edit", run_id, 1)
        url = f"{base_url}/kie/callbacks/{waiting.ref}"
        token = {"token": callback_token(API_KEY, waiting.ref)}

        def post(body: str | bytes, headers: dict[str, str], params: dict[str, str]) -> int:
            return requests.post(url, data=body, headers=headers, params=params, timeout=30).status_code

        kie_id = ids[0]
        refused = {
            "forged signature": post(body_of(kie_id), signed(kie_id, secret="not-the-key"), token),
            "no token": post(body_of(kie_id), signed(kie_id), {}),
            "another task's token": post(
                body_of(kie_id), signed(kie_id), {"token": callback_token(API_KEY, neighbour.ref)}
            ),
            "stale timestamp": post(body_of(kie_id), signed(kie_id, age=600), token),
            "oversized body": post(b"{" + b" " * 70_000 + b"}", signed(kie_id), token),
            "malformed JSON": post("{not json", signed(kie_id), token),
            "a task nobody waits for": post(body_of(ids[1]), signed(ids[1]), token),
        }
        assert refused == {
            "forged signature": 401,
            "no token": 403,
            "another task's token": 403,
            "stale timestamp": 401,
            "oversized body": 413,
            "malformed JSON": 400,
            "a task nobody waits for": 404,
        }
        assert hints(airflow) == set()  # nothing woken

        # Kie calls back once the task has ended; so does this test, signed with the account's key.
        airflow.wait_for(
            "the Kie task to end", lambda: time.time() > kie_emulator.state.tasks[kie_id].done_at
        )
        headers = signed(kie_id)
        assert post(body_of(kie_id), headers, token) == 200
        assert post(body_of(kie_id), headers, token) == 409  # the same signed callback again: a replay
        assert hints(airflow) == {kie_id}

        # A triggerer lists the hints from the plugin, with a token only the connection's API key mints.
        def list_hints(conn_id: str = "kie_default", token: str = hints_token(API_KEY, "kie_default")):
            headers = {HINTS_HEADER: token} if token else {}
            return requests.get(
                f"{base_url}/kie/hints", params={"conn_id": conn_id}, headers=headers, timeout=30
            )

        assert list_hints(token="").status_code == 403
        assert list_hints(token=hints_token("not-the-key", "kie_default")).status_code == 403
        assert list_hints(conn_id="nobody").status_code == 404
        assert list_hints().json() == {"kie_task_ids": [kie_id]}

        state, _, _ = airflow.wait_for("the run to finish", lambda: airflow.finished_run("kie_sharing_batch"))
        assert state == "success", airflow.describe()
        polls = [r.query.get("taskId") for r in kie_emulator.requests if r.endpoint == "recordInfo"]
        # Woken by its callback, the first task was read once or twice; the two whose callbacks were
        # lost finished too, by the safety-net poll. Polling every 0.5 s would have read each ~10 times.
        assert polls.count(kie_id) <= 2, polls
        assert all(polls.count(ids[i]) >= 1 for i in (1, 2))

        # Then Kie's own callbacks arrive, for mapped edits and for a batch operator's: every task is
        # woken by one and read once or twice.
        kie_emulator.config.update({"callback_drop_rate": 0.0})
        before, created_before = len(kie_emulator.requests), set(kie_emulator.state.tasks)
        airflow.cli("dags", "trigger", "kie_sharing_batch")
        airflow.trigger_dag("kie_batch_operator")
        for dag_id in ("kie_sharing_batch", "kie_batch_operator"):
            state, _, _ = airflow.wait_for(f"{dag_id} to finish", lambda d=dag_id: airflow.finished_run(d))
            assert state == "success", airflow.describe()
        new_ids = set(kie_emulator.state.tasks) - created_before
        assert len(new_ids) == 2 * EDITS
        polls = [r.query.get("taskId") for r in kie_emulator.requests[before:] if r.endpoint == "recordInfo"]
        assert all(1 <= polls.count(task) <= 2 for task in new_ids), polls
        delivered = {
            c["task_id"]: c.get("status") for c in kie_emulator.state.callbacks if c["task_id"] in new_ids
        }
        assert delivered == dict.fromkeys(new_ids, 200)
        assert new_ids <= hints(airflow)
        # The triggerer listed the hints from the plugin, never through its supervisor instead.
        listed = [line for line in airflow.log("api-server").splitlines() if "path=/kie/hints" in line]
        assert any("status_code=200" in line for line in listed), listed[-3:]
        every_log = "".join(path.read_text(errors="replace") for path in airflow.home.rglob("*.log"))
        assert "Cannot list Kie callback hints" not in every_log
        assert API_KEY not in "".join(airflow.log(name) for name in airflow.processes)
        assert WEBHOOK_SECRET not in "".join(airflow.log(name) for name in airflow.processes)
    finally:
        airflow.stop()
