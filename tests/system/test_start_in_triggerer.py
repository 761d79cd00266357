"""On a real Airflow 3.3, a deferrable Kie edit starts in the triggerer: its templates are rendered there,
no worker runs it, bad input fails it with the usual error and no request, and what needs a worker
(a local file input) starts on one and says why."""

from __future__ import annotations

import json

import pytest

from tests.support import AIRFLOW_33, EXAMPLES, RealAirflow

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not AIRFLOW_33, reason="Airflow starts tasks in the triggerer from 3.3"),
]

DAG_SOURCE = f"""
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_kie.operators.seedream import SeedreamEditOperator

with DAG(
    "kie_start_in_triggerer",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    params={{"style": "clear water", "empty": ""}},
):
    common = dict(deferrable=True, poll_interval=0.5)
    SeedreamEditOperator(
        task_id="edit",
        prompt="Make the dress {{{{ params.style }}}} (take {{{{ dag_run.conf.get('take', 0) }}}})",
        image_urls=["https://a/b.png"],
        **common,
    )
    SeedreamEditOperator(task_id="bad", prompt="{{{{ params.empty }}}}", image_urls=["https://a/b.png"], **common)
    SeedreamEditOperator(
        task_id="from_file", prompt="Make it glass", image_urls=[{str(EXAMPLES / "sample.png")!r}], **common
    )
"""


def task_log(airflow: RealAirflow, task_id: str) -> str:
    paths = sorted(
        airflow.home.glob(f"logs/dag_id=kie_start_in_triggerer/*/task_id={task_id}/attempt=1.log*")
    )
    return "\n".join(path.read_text() for path in paths)


def test_an_edit_starts_and_ends_in_the_triggerer(tmp_path, kie_emulator, monkeypatch):
    kie_emulator.config.update({"waiting_seconds": 0.5, "generating_seconds": 2})
    monkeypatch.setenv("KIE_UPLOAD_CACHE_DIR", str(tmp_path / "upload-cache"))
    airflow = RealAirflow.with_dags(tmp_path, kie_emulator.connection_uri(), {"start.py": DAG_SOURCE})
    airflow.start_all()
    try:
        airflow.wait_for("the DAG", lambda: airflow.parsed("kie_start_in_triggerer"))
        airflow.cli("dags", "unpause", "kie_start_in_triggerer")
        airflow.cli("dags", "trigger", "kie_start_in_triggerer", "--conf", json.dumps({"take": 7}))
        state, _, _ = airflow.wait_for("the run", lambda: airflow.finished_run("kie_start_in_triggerer"))
        with airflow.db() as db:
            states = dict(db.execute("SELECT task_id, state FROM task_instance").fetchall())
            (urls,) = db.execute(
                "SELECT value FROM xcom WHERE task_id = 'edit' AND key = 'return_value'"
            ).fetchone()
    finally:
        airflow.stop()
    assert state == "failed" and states == {"edit": "success", "bad": "failed", "from_file": "success"}

    prompts = sorted(t.body["input"]["prompt"] for t in kie_emulator.state.tasks.values())
    assert prompts == ["Make it glass", "Make the dress clear water (take 7)"]  # rendered in the triggerer
    assert kie_emulator.count("createTask") == 2  # none for the bad input
    (edit_task,) = [t for t in kie_emulator.state.tasks.values() if "dress" in t.body["input"]["prompt"]]
    assert json.loads(urls) == [f"{kie_emulator.url}/files/results/{edit_task.task_id}.png"]

    assert airflow.worker_runs("edit") == []  # never on a worker
    assert "invalid 'prompt'" in task_log(airflow, "bad")
    assert len(airflow.worker_runs("from_file")) >= 1
    assert "Started on a worker, not in the triggerer: its input names files" in task_log(
        airflow, "from_file"
    )


RESTART_DAG_SOURCE = """
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_kie.operators.seedream import SeedreamEditOperator

with DAG("kie_triggerer_restarts", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    for name in ("edit_a", "edit_b"):
        SeedreamEditOperator(
            task_id=name, prompt=f"Make {name} glass", image_urls=["https://a/b.png"], deferrable=True,
            poll_interval=0.5,
        )
"""


@pytest.mark.fault(
    fault="triggerer down when the tasks start, then killed between a createTask and its id being stored",
    where="triggerer process (start in the triggerer)",
    expected="one createTask per edit; the edit whose id was lost fails with an ambiguous-create error",
)
def test_triggerer_restarts_before_and_during_a_create(tmp_path, kie_emulator, monkeypatch):
    kie_emulator.config.update({"waiting_seconds": 0.5, "generating_seconds": 2})
    kie_emulator.add_fault("slow-body", "createTask", delay=45)  # one create's reply stalls half-way
    airflow = RealAirflow.with_dags(
        tmp_path, kie_emulator.connection_uri(), {"restart.py": RESTART_DAG_SOURCE}
    )
    airflow.start_all("api-server", "scheduler", "dag-processor")  # no triggerer yet

    def xcom_count(key: str) -> int:
        with airflow.db() as db:
            return db.execute("SELECT count(*) FROM xcom WHERE key = ?", (key,)).fetchone()[0]

    def deferred() -> bool:
        with airflow.db() as db:
            states = [s for (s,) in db.execute("SELECT state FROM task_instance").fetchall()]
        return states == ["deferred", "deferred"]

    try:
        airflow.trigger_dag("kie_triggerer_restarts")
        airflow.wait_for("both edits to wait for a triggerer", deferred)
        airflow.start("triggerer")  # the restart before any create
        airflow.wait_for(
            "one create in flight and the other's id stored",
            lambda: (
                len(kie_emulator.state.tasks) == 2
                and xcom_count("kie_jobs.0") == 2  # both marked as they left
                and xcom_count("kie_task_id") == 1
            ),
        )
        airflow.kill("triggerer")  # the restart between a create and its id being stored
        airflow.start("triggerer")
        state, _, _ = airflow.wait_for("the run", lambda: airflow.finished_run("kie_triggerer_restarts"))
        with airflow.db() as db:
            states = dict(db.execute("SELECT task_id, state FROM task_instance").fetchall())
    finally:
        airflow.stop()
    assert state == "failed" and sorted(states.values()) == ["failed", "success"], airflow.describe()
    assert kie_emulator.count("createTask") == len(kie_emulator.state.tasks) == 2
    (lost,) = [task for task, s in states.items() if s == "failed"]
    logs = "\n".join(
        p.read_text()
        for p in airflow.home.glob(f"logs/dag_id=kie_triggerer_restarts/*/task_id={lost}/*.log*")
    )
    assert "KieAmbiguousCreateError" in logs or "was not sent again" in logs
