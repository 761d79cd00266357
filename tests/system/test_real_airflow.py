"""A real Airflow (scheduler, triggerer, dag-processor, api-server; SQLite; LocalExecutor) runs
kie_seedream_edit deferrable through the triggerer against the emulator."""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import subprocess
import time
from pathlib import Path

import airflow
import pytest

from airflow_provider_kie.testing import free_port
from tests.integration.test_airflow_cli import AIRFLOW

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(airflow.__version__ < "3", reason="the system test drives Airflow 3's components"),
]

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


class RealAirflow:
    def __init__(self, home: Path, conn: str, dags_folder: Path = EXAMPLES):
        port = free_port()
        self.home = home
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
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
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
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

    def kill(self, component: str) -> None:
        """Kill a component as a crash would (SIGKILL, no clean shutdown)."""
        process = self.processes.pop(component)
        os.killpg(process.pid, 9)
        process.wait(20)
        (self.home / f"{component}.log").rename(self.home / f"{component}.killed.log")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)

    def trigger_dag(self, dag_id: str) -> None:
        """Wait until the dag-processor has parsed ``dag_id``, then unpause it and start a run."""

        def parsed():
            with self.db() as db:
                return db.execute("SELECT 1 FROM dag WHERE dag_id = ?", (dag_id,)).fetchone()

        self.wait_for(f"{dag_id} to be parsed", parsed)
        self.cli("dags", "unpause", dag_id)
        self.cli("dags", "trigger", dag_id)

    def finished_run(self, dag_id: str) -> tuple[str, str, str] | None:
        """(state, start_date, end_date) of the latest run of ``dag_id`` once it has finished."""
        with self.db() as db:
            row = db.execute(
                "SELECT state, start_date, end_date FROM dag_run WHERE dag_id = ? ORDER BY id DESC", (dag_id,)
            ).fetchone()
        return row if row and row[0] in ("success", "failed") else None

    def worker_runs(self, task_id: str) -> list[float]:
        """Durations (s) of every worker run (LocalExecutor workload) of ``task_id``'s task instances:
        one per start, plus one per resume after a trigger."""
        with self.db() as db:
            ti_ids = {
                str(row[0]).replace("-", "")
                for row in db.execute("SELECT id FROM task_instance WHERE task_id = ?", (task_id,))
            }
        runs = []
        for line in self.log("scheduler").splitlines():
            if "Workload finished" in line:
                match = re.search(r"duration=([\d.]+).*workload_id=([0-9a-f-]+)", line)
                if match and match.group(2).replace("-", "") in ti_ids:
                    runs.append(float(match.group(1)))
        return runs

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


API_KEY = "kie-sk-" + secrets.token_hex(16)


@pytest.fixture
def real_airflow(tmp_path, kie_emulator):
    kie_emulator.config.update({"waiting_seconds": 1, "generating_seconds": 12})
    instance = RealAirflow(tmp_path, kie_emulator.connection_uri(API_KEY))
    instance.cli("db", "migrate")
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        instance.start(component)
    yield instance
    instance.stop()


def secret_occurrences(root: Path, secret: str) -> dict[str, int]:
    """Every file under ``root`` (logs, the SQLite database with XCom, rendered fields, triggers...)."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            count = path.read_bytes().count(secret.encode())
            if count:
                found[str(path.relative_to(root))] = count
    return found


@pytest.mark.fault(
    fault="triggerer killed mid-wait (its trigger created the task), new triggerer started",
    where="triggerer process",
    expected="success, one createTask",
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

    # The journey, from the task's logs: defer, create and poll in the triggerer, find the task again
    # after the restart, end the Airflow task there (no worker resumes it).
    events = [
        json.loads(line)["event"]
        for path in sorted(
            real_airflow.home.glob("logs/dag_id=kie_seedream_edit/*/task_id=edit_image/attempt=1.log*")
        )
        for line in path.read_text().splitlines()
        if line.startswith("{")
    ]
    journey = [
        "Pausing task as DEFERRED. ",
        f"Created Kie task {task_id} (model seedream/4.5-edit)",
        f"Kie task {task_id} is generating",
        f"Kie task {task_id} was created before a triggerer restart; waiting for it",
        f"Kie task {task_id} succeeded; ending the Airflow task from the triggerer",
        "trigger completed",
    ]
    assert all(step in events for step in journey), events
    assert len(real_airflow.worker_runs("edit_image")) == 1  # started once; never resumed on a worker
    polls = [r for r in kie_emulator.requests if r.endpoint == "recordInfo"]
    assert polls and all(r.user_agent.startswith("airflow-provider-kie/") for r in polls)
    with real_airflow.db() as db:
        assert db.execute("SELECT count(*) FROM trigger").fetchone()[0] == 0
        (try_number,) = db.execute(
            "SELECT try_number FROM task_instance WHERE dag_id = 'kie_seedream_edit' AND task_id = 'edit_image'"
        ).fetchone()
    assert try_number == 1
    starts = [e for e in events if e.startswith("trigger kie_seedream_edit/") and e.endswith("starting")]
    assert len(starts) >= 2, starts  # once per triggerer

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
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "kie_worker_crash.py").write_text(CRASH_DAG)
    kie_emulator.config.update({"waiting_seconds": 1, "generating_seconds": 15})
    airflow_instance = RealAirflow(tmp_path / "home", kie_emulator.connection_uri(API_KEY), dags)
    airflow_instance.home.mkdir()
    airflow_instance.cli("db", "migrate")
    for component in ("api-server", "scheduler", "dag-processor"):
        airflow_instance.start(component)
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
    # The retry found the stored Kie task: still running (reconnect) or already done (no resubmission).
    text = retry_log.read_text()
    assert (
        "Reconnecting to existing job" in text
        or "Job already completed successfully, skipping resubmission" in text
    )
