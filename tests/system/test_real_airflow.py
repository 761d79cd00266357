"""A real Airflow (scheduler, triggerer, dag-processor, api-server; SQLite; LocalExecutor) runs
kie_seedream_edit deferrable through the triggerer against the emulator."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.support import AIRFLOW_3, RealAirflow, secret_occurrences

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not AIRFLOW_3, reason="the system test drives Airflow 3's components"),
]


API_KEY = "kie-sk-" + secrets.token_hex(16)


@pytest.fixture
def real_airflow(tmp_path, kie_emulator):
    kie_emulator.config.update({"waiting_seconds": 1, "generating_seconds": 12})
    instance = RealAirflow(tmp_path, kie_emulator.connection_uri(API_KEY))
    instance.start_all()
    yield instance
    instance.stop()


@pytest.mark.fault(
    fault="triggerer killed mid-wait (the task started in the triggerer, which created the Kie task), new triggerer started",
    where="triggerer process",
    expected="success, one createTask, no worker run",
)
def test_edit_dag_runs_through_the_triggerer(real_airflow, kie_emulator, record_property):
    real_airflow.trigger_dag("kie_seedream_edit")

    def trigger_kwargs():
        with real_airflow.db() as db:
            row = db.execute("SELECT kwargs FROM trigger").fetchone()
        return row and kie_emulator.count("recordInfo") >= 2 and row[0]

    # Deferred and polled by the first triggerer: its stored kwargs carry no key. Then it crashes.
    kwargs = real_airflow.wait_for("the trigger to poll", trigger_kwargs)
    assert API_KEY not in kwargs and "seedream/4.5-edit" in kwargs  # the trigger creates the Kie task
    real_airflow.kill("triggerer")
    polls_before_restart = kie_emulator.count("recordInfo")
    real_airflow.start("triggerer")

    state, _, _ = real_airflow.wait_for(
        "the run to finish", lambda: real_airflow.finished_run("kie_seedream_edit")
    )
    assert state == "success", real_airflow.log("scheduler")[-3000:]

    (task_id,) = kie_emulator.state.tasks
    assert kie_emulator.count("createTask") == 1
    record_property("create_requests", kie_emulator.count("createTask"))
    record_property("tasks_created", len(kie_emulator.state.tasks))
    assert kie_emulator.count("recordInfo") > polls_before_restart  # the new triggerer resumed polling
    with real_airflow.db() as db:
        xcom = {
            (task, key): json.loads(value) if isinstance(value, str) else value
            for task, key, value in db.execute(
                "SELECT task_id, key, value FROM xcom WHERE dag_id = 'kie_seedream_edit'"
            ).fetchall()
        }
    assert xcom[("edit_image", "return_value")] == [f"{kie_emulator.url}/files/results/{task_id}.png"]
    assert xcom[("edit_image", "kie_task_id")] == task_id
    assert xcom[("edit_image", "_link_KieResultLink")] == xcom[("edit_image", "return_value")][0]
    assert Path(xcom[("save_result", "return_value")]).read_bytes().startswith(b"\x89PNG")

    # The journey, from the task's logs: start in the triggerer, find the task again after the restart,
    # end the Airflow task in the triggerer (no worker runs it at all). Only steps that happen whatever the machine's
    # speed: how many polls fall into each Kie state is not asserted, nor what the killed triggerer
    # logged (SIGKILL may lose its last lines); one createTask and the XCom above prove the create.
    events = [
        json.loads(line)["event"]
        for path in sorted(
            real_airflow.home.glob("logs/dag_id=kie_seedream_edit/*/task_id=edit_image/attempt=1.log*")
        )
        for line in path.read_text().splitlines()
        if line.startswith("{")
    ]
    journey = [
        f"Kie task {task_id}, created before this run, is ",
        f"Kie task {task_id} succeeded; ending the Airflow task from the triggerer",
        "trigger completed",
    ]
    assert all(any(event.startswith(step) for event in events) for step in journey), events
    assert real_airflow.worker_runs("edit_image") == []  # started and ended in the triggerer
    polls = [r for r in kie_emulator.requests if r.endpoint == "recordInfo"]
    assert polls and all(r.user_agent.startswith("airflow-provider-kie/") for r in polls)
    with real_airflow.db() as db:
        assert db.execute("SELECT count(*) FROM trigger").fetchone()[0] == 0
        (try_number,) = db.execute(
            "SELECT try_number FROM task_instance WHERE dag_id = 'kie_seedream_edit' AND task_id = 'edit_image'"
        ).fetchone()
    assert try_number == 1

    # The key was used (the emulator saw it) but appears nowhere Airflow wrote: logs, DB, XCom, triggers.
    assert all(r.key_sha256 for r in kie_emulator.requests)
    leaks = secret_occurrences(real_airflow.home, API_KEY)
    record_property("secret_occurrences", sum(leaks.values()))
    assert leaks == {}


CRASH_DAG = """
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_kie.operators.seedream import SeedreamEditOperator

with DAG("kie_worker_crash", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    SeedreamEditOperator(
        task_id="edit_in_worker",
        prompt="Make it water",
        image_urls=["https://a/b.png"],
        deferrable=False,
        poll_interval=1,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
"""


def task_process(ti_id: str) -> int | None:
    """The task runner process of ``ti_id`` (Airflow titles it "airflow worker -- <ti id>")."""
    ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    for line in ps.splitlines():
        pid, _, args = line.strip().partition(" ")
        if args.startswith("airflow worker -- ") and args.split()[-1].replace("-", "") == ti_id.replace(
            "-", ""
        ):
            return int(pid)
    return None


@pytest.mark.fault(
    fault="worker killed (SIGKILL) after createTask, while waiting",
    where="task process, LocalExecutor",
    expected="retry resumes the same Kie task",
)
def test_killed_worker_is_retried_on_the_same_kie_task(tmp_path, kie_emulator, record_property):
    kie_emulator.config.update({"waiting_seconds": 1, "generating_seconds": 15})
    conn = kie_emulator.connection_uri(API_KEY)
    airflow_instance = RealAirflow.with_dags(tmp_path, conn, {"kie_worker_crash.py": CRASH_DAG})
    airflow_instance.start_all("api-server", "scheduler", "dag-processor")
    try:
        airflow_instance.trigger_dag("kie_worker_crash")

        def running_task():
            if kie_emulator.count("recordInfo") < 1:  # created, stored, and waiting in the worker
                return None
            with airflow_instance.db() as db:
                row = db.execute("SELECT id FROM task_instance WHERE task_id = 'edit_in_worker'").fetchone()
            return row and task_process(str(row[0]))

        pid = airflow_instance.wait_for("the worker to wait on Kie", running_task)
        os.kill(pid, 9)
        state, _, _ = airflow_instance.wait_for(
            "the retry to finish", lambda: airflow_instance.finished_run("kie_worker_crash")
        )
        with airflow_instance.db() as db:
            (try_number,) = db.execute(
                "SELECT try_number FROM task_instance WHERE task_id = 'edit_in_worker'"
            ).fetchone()
            (urls,) = db.execute("SELECT value FROM xcom WHERE key = 'return_value'").fetchone()
    finally:
        airflow_instance.stop()
    record_property("create_requests", kie_emulator.count("createTask"))
    record_property("tasks_created", len(kie_emulator.state.tasks))
    assert state == "success", airflow_instance.log("scheduler")[-3000:]
    assert try_number == 2
    (task_id,) = kie_emulator.state.tasks
    assert kie_emulator.count("createTask") == 1
    assert json.loads(urls) == [f"{kie_emulator.url}/files/results/{task_id}.png"]
    retry_log = next(
        airflow_instance.home.glob("logs/dag_id=kie_worker_crash/*/task_id=edit_in_worker/attempt=2.log")
    )
    # The retry found the Kie task the first try kept in the task state store, and waited for it.
    assert f"Kie task {task_id}, created before this run, is " in retry_log.read_text()


ASSETS_DAG = """
from datetime import datetime
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Asset, task

from airflow_provider_kie.operators.seedream import SeedreamEditOperator

RESULTS = Asset("kie://kie_assets/results")
MARKERS = Path(__file__).parent / "markers"


def mark(context):
    MARKERS.mkdir(exist_ok=True)
    (MARKERS / context["ti"].task_id).write_text("success callback ran")


with DAG("kie_assets", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    common = dict(image_urls=["https://a/b.png"], deferrable=True, poll_interval=0.5)
    SeedreamEditOperator(task_id="with_outlet", prompt="Make it water", outlets=[RESULTS], **common)
    SeedreamEditOperator(task_id="with_callback", prompt="Make it glass", on_success_callback=mark, **common)
    SeedreamEditOperator(task_id="plain", prompt="Make it ice", **common)

with DAG("kie_assets_consumer", start_date=datetime(2026, 1, 1), schedule=[RESULTS], catchup=False):

    @task
    def consume():
        return "the asset-scheduled DAG ran"

    consume()
"""


@pytest.mark.fault(
    fault="edits with an outlet, a success callback, or neither, deferred on a real triggerer",
    where="real scheduler, triggerer, dag-processor",
    expected="asset event recorded and its DAG run, callback run; only the plain edit ends in the triggerer",
)
def test_outlets_and_success_callbacks_are_honoured(tmp_path, kie_emulator, record_property):
    # Airflow 3.3 records asset events and runs on_success_callback only when a worker finishes a task
    # (a TaskSuccessEvent from a trigger skips both), so those tasks must resume on a worker.
    kie_emulator.config.update({"waiting_seconds": 0.5, "generating_seconds": 2})
    conn = kie_emulator.connection_uri(API_KEY)
    airflow_instance = RealAirflow.with_dags(tmp_path, conn, {"kie_assets.py": ASSETS_DAG})
    airflow_instance.start_all()
    try:
        airflow_instance.wait_for("the consumer DAG", lambda: airflow_instance.parsed("kie_assets_consumer"))
        airflow_instance.cli("dags", "unpause", "kie_assets_consumer")
        airflow_instance.trigger_dag("kie_assets")
        state, _, _ = airflow_instance.wait_for(
            "the run", lambda: airflow_instance.finished_run("kie_assets")
        )
        assert state == "success", airflow_instance.log("scheduler")[-3000:]
        consumer = airflow_instance.wait_for(
            "the asset-scheduled DAG to run", lambda: airflow_instance.finished_run("kie_assets_consumer")
        )
        with airflow_instance.db() as db:
            events = db.execute(
                "SELECT source_task_id FROM asset_event JOIN asset ON asset.id = asset_event.asset_id "
                "WHERE asset.uri = 'kie://kie_assets/results'"
            ).fetchall()
    finally:
        airflow_instance.stop()
    record_property("create_requests", kie_emulator.count("createTask"))
    record_property("tasks_created", len(kie_emulator.state.tasks))
    assert events == [("with_outlet",)]
    assert consumer[0] == "success"
    assert sorted(p.name for p in (tmp_path / "dags" / "markers").iterdir()) == ["with_callback"]
    assert kie_emulator.count("createTask") == 3
    # Each starts in the triggerer; only the success of the first two resumes on a worker.
    assert len(airflow_instance.worker_runs("with_outlet")) == 1
    assert len(airflow_instance.worker_runs("with_callback")) == 1
    assert airflow_instance.worker_runs("plain") == []
