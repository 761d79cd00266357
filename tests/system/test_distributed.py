"""Airflow as a deployment that outgrew one machine runs it: PostgreSQL, three triggerers (HA) and, in
the nightly variant, the CeleryExecutor with two workers on Redis, all on one Kie key, against the
emulator enforcing Kie's limits. One triggerer is SIGKILLed mid-batch: its triggers move to the others
and every task ends with exactly one Kie task. (The 300-edit runs: benchmarks/distributed.py.)"""

from __future__ import annotations

import pytest

from tests.support import AIRFLOW_3, REPOSITORY, RealAirflow, postgres_server, redis_server

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not AIRFLOW_3, reason="drives Airflow 3's components"),
]

DAG = REPOSITORY / "benchmarks" / "dags" / "kie_sharing_batch.py"


def run_batch(tmp_path, kie_emulator, *, edits: int, celery_workers: int, broker: str | None, database: str):
    kie_emulator.config.update(
        {"rate_limits": True, "waiting_seconds": 1, "generating_seconds": 8, "credits": 10**9}
    )
    airflow = RealAirflow.with_dags(
        tmp_path, kie_emulator.connection_uri("shared-key"), {DAG.name: DAG.read_text()}, database
    )
    airflow.env.update(
        {
            "KIE_BATCH_SIZE": str(edits),
            "KIE_POLL_INTERVAL": "2",
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "1000",
            # Airflow's default; a loaded 2-core machine can delay a triggerer's heartbeat past 5 s.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "30",
        }
    )
    if broker:
        airflow.env["AIRFLOW__CELERY__BROKER_URL"] = broker
        airflow.env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + database
    airflow.start_deployment(triggerers=3, celery_workers=celery_workers, worker_slots=8)
    try:
        airflow.trigger_dag("kie_sharing_batch")
        # Mid-batch: some tasks created, not all; then one triggerer dies as a crash would.
        airflow.wait_for("a third of the creates", lambda: len(kie_emulator.state.tasks) >= edits // 3)
        airflow.kill("triggerer-1")
        state, _, _ = airflow.wait_for(
            "the batch to finish", lambda: airflow.finished_run("kie_sharing_batch"), timeout=900
        )
        with airflow.db() as db:
            states = dict(db.execute("SELECT state, count(*) FROM task_instance GROUP BY state").fetchall())
            failed = [i for (i,) in db.execute("SELECT map_index FROM task_instance WHERE state = 'failed'")]
        return state, states, {i: airflow.task_log(i) for i in failed}
    finally:
        airflow.stop()


def assert_one_kie_task_per_edit(kie_emulator, edits: int, states: dict, failed: dict[int, str]) -> None:
    """No edit created twice; every edit succeeded, except those whose createTask the killed triggerer
    had marked sent: Kie may have their task (the request may have left before the kill), so each fails
    as an ambiguous create, is never sent again, and says so."""
    prompts = [task.body["input"]["prompt"] for task in kie_emulator.state.tasks.values()]
    assert len(prompts) == len(set(prompts)), "an edit was created twice"
    assert states.get("success", 0) + len(failed) == edits, states
    for index, log in failed.items():
        assert "KieAmbiguousCreateError" in log, (
            f"edit {index} failed, not as an ambiguous create:\n{log[-3000:]}"
        )


def test_three_triggerers_share_a_key_and_survive_one_killed(tmp_path, kie_emulator):
    edits = 40
    with postgres_server() as database:
        state, states, failed = run_batch(
            tmp_path, kie_emulator, edits=edits, celery_workers=0, broker=None, database=database
        )
    assert_one_kie_task_per_edit(kie_emulator, edits, states, failed)
    assert state == ("failed" if failed else "success")


@pytest.mark.nightly
@pytest.mark.parametrize("deferrable", [True, False])
def test_celery_workers_and_three_triggerers_share_a_key(tmp_path, kie_emulator, deferrable, monkeypatch):
    edits = 120
    monkeypatch.setenv("KIE_DEFERRABLE", str(deferrable).lower())
    with postgres_server() as database, redis_server() as broker:
        state, states, failed = run_batch(
            tmp_path, kie_emulator, edits=edits, celery_workers=2, broker=broker, database=database
        )
    assert_one_kie_task_per_edit(kie_emulator, edits, states, failed)
    assert state == ("failed" if failed else "success")
