"""A real Airflow (scheduler, triggerer, dag-processor, api-server; SQLite; LocalExecutor) runs
kie_seedream_edit deferrable through the triggerer against the emulator."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import airflow
import pytest

from tests.integration.test_airflow_cli import AIRFLOW

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(airflow.__version__ < "3", reason="the system test drives Airflow 3's components"),
]

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RealAirflow:
    def __init__(self, home: Path, conn: str):
        port = free_port()
        self.home = home
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW_CONN_KIE_DEFAULT": conn,
            "KIE_POLL_INTERVAL": "0.5",
            "KIE_OUTPUT_DIR": str(home / "output"),
        }
        self.processes: dict[str, subprocess.Popen] = {}

    def cli(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, (
            f"airflow {' '.join(args)}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
        return result.stdout

    def start(self, component: str, *args: str) -> None:
        log = open(self.home / f"{component}.log", "w")  # noqa: SIM115 - closed with the process
        self.processes[component] = subprocess.Popen(
            [AIRFLOW, component, *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self, component: str) -> str:
        return (self.home / f"{component}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.home / "airflow.db", timeout=30)

    def wait_for(self, what: str, check, timeout: float = 240.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                assert process.poll() is None, f"{name} exited:\n{self.log(name)[-3000:]}"
            value = check()
            if value:
                return value
            time.sleep(1)
        logs = "\n".join(f"--- {name}\n{self.log(name)[-2000:]}" for name in self.processes)
        raise AssertionError(f"timed out waiting for {what}\n{logs}")


@pytest.fixture
def real_airflow(tmp_path, kie_emulator):
    kie_emulator.config.update({"waiting_seconds": 1, "generating_seconds": 4})
    instance = RealAirflow(tmp_path, kie_emulator.connection_uri())
    instance.cli("db", "migrate")
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        instance.start(component)
    yield instance
    instance.stop()


def dag_run_state(airflow_instance: RealAirflow, dag_id: str) -> str | None:
    with airflow_instance.db() as db:
        row = db.execute("SELECT state FROM dag_run WHERE dag_id = ? ORDER BY id DESC", (dag_id,)).fetchone()
    return row[0] if row and row[0] in ("success", "failed") else None


def test_edit_dag_runs_through_the_triggerer(real_airflow, kie_emulator):
    def parsed():
        with real_airflow.db() as db:
            return db.execute("SELECT 1 FROM dag WHERE dag_id = 'kie_seedream_edit'").fetchone()

    real_airflow.wait_for("the DAG to be parsed", parsed)
    real_airflow.cli("dags", "unpause", "kie_seedream_edit")
    real_airflow.cli("dags", "trigger", "kie_seedream_edit")
    state = real_airflow.wait_for(
        "the run to finish", lambda: dag_run_state(real_airflow, "kie_seedream_edit")
    )
    assert state == "success", real_airflow.log("scheduler")[-3000:]

    (task_id,) = kie_emulator.state.tasks
    assert kie_emulator.count("createTask") == 1
    with real_airflow.db() as db:
        xcom = {
            (task, key): json.loads(value)
            for task, key, value in db.execute(
                "SELECT task_id, key, value FROM xcom WHERE dag_id = 'kie_seedream_edit'"
            ).fetchall()
        }
    assert xcom[("edit_image", "return_value")] == [f"{kie_emulator.url}/files/results/{task_id}.png"]
    assert Path(xcom[("save_result", "return_value")]).read_bytes().startswith(b"\x89PNG")

    # The trigger's journey, from the task's logs: create, defer, poll in the triggerer, fire, resume.
    events = [
        json.loads(line)["event"]
        for path in sorted(
            real_airflow.home.glob("logs/dag_id=kie_seedream_edit/*/task_id=edit_image/attempt=1.log*")
        )
        for line in path.read_text().splitlines()
        if line.startswith("{")
    ]
    journey = [
        f"Created Kie task {task_id} (model seedream/4.5-edit)",
        "Pausing task as DEFERRED. ",
        f"Kie task {task_id} is generating",
        "Trigger fired event",
        "trigger completed",
    ]
    assert all(step in events for step in journey), events
    assert any(e.startswith("trigger kie_seedream_edit/") and e.endswith("starting") for e in events)
    polls = [r for r in kie_emulator.requests if r.endpoint == "recordInfo"]
    assert polls and all(r.user_agent.startswith("airflow-provider-kie/") for r in polls)
    with real_airflow.db() as db:
        assert db.execute("SELECT count(*) FROM trigger").fetchone()[0] == 0
        (try_number,) = db.execute(
            "SELECT try_number FROM task_instance WHERE dag_id = 'kie_seedream_edit' AND task_id = 'edit_image'"
        ).fetchone()
    assert try_number == 1
