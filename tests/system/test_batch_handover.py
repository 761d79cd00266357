"""A batch paused mid-create in one of two triggerers (SIGSTOP) until Airflow hands its trigger to the
other, then resumed (SIGCONT), on a real Airflow 3.3 with PostgreSQL: the batch's ledger lets one run of
it create at a time, so no edit is created twice, none is reported ambiguous that never reached Kie,
and at most the one request truly in flight at the pause is lost."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.support import AIRFLOW_3, REPOSITORY, RealAirflow, postgres_server

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not AIRFLOW_3, reason="drives Airflow 3's components"),
]

DAG = REPOSITORY / "benchmarks" / "dags" / "kie_batch_operator.py"
EDITS = 60
TRIGGERERS = ("triggerer-1", "triggerer-2")


@pytest.mark.fault(
    fault="the triggerer running a batch paused mid-create (SIGSTOP) until Airflow hands the batch to "
    "another triggerer, then resumed",
    where="triggerer HA hand-over (batch trigger)",
    expected="no edit created twice, none reported ambiguous that never left, at most one lost",
)
def test_a_batch_paused_mid_create_is_created_once(tmp_path, kie_emulator):
    kie_emulator.config.update(
        {"rate_limits": True, "waiting_seconds": 1, "generating_seconds": 5, "credits": 10**9}
    )
    with postgres_server() as database:
        airflow = RealAirflow.with_dags(
            tmp_path, kie_emulator.connection_uri("handover-key"), {DAG.name: DAG.read_text()}, database
        )
        airflow.env.update(
            {
                "KIE_BATCH_SIZE": str(EDITS),
                "KIE_POLL_INTERVAL": "2",
                # A paused triggerer's triggers go to the other after 10 s without its heartbeat.
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            }
        )
        # Started one after the other, so the triggerers' job ids tell them apart.
        airflow.start_deployment(triggerers=1)
        jobs = {"triggerer-1": airflow.wait_for("triggerer-1's job", lambda: _triggerer_jobs(airflow))[0]}
        airflow.start("triggerer", "--skip-serve-logs", name="triggerer-2")
        jobs["triggerer-2"] = airflow.wait_for("triggerer-2's job", lambda: _triggerer_jobs(airflow)[1:])[0]
        try:
            airflow.trigger_dag("kie_batch_operator")
            job = airflow.wait_for("a triggerer to take the batch", lambda: _batch_triggerer(airflow))
            (running,) = [name for name, id_ in jobs.items() if id_ == job]
            (other,) = [name for name in TRIGGERERS if name != running]
            airflow.wait_for("a fifth of the creates", lambda: len(kie_emulator.state.tasks) >= EDITS // 5)
            paused = airflow.processes[running]
            os.killpg(paused.pid, signal.SIGSTOP)
            try:
                airflow.wait_for(
                    "the other triggerer's run to meet the paused one's claim",
                    lambda: "waiting for it to hand over" in _trigger_log(airflow, jobs[other]),
                    timeout=180,
                )
            finally:
                os.killpg(paused.pid, signal.SIGCONT)
            state, _, _ = airflow.wait_for(
                "the batch to finish", lambda: airflow.finished_run("kie_batch_operator"), timeout=600
            )
            results = _return_value(airflow)
        finally:
            airflow.stop()

    prompts = [task.body["input"]["prompt"] for task in kie_emulator.state.tasks.values()]
    assert len(prompts) == len(set(prompts)), "an edit was created twice"
    assert len(results) == EDITS
    at_kie = set(prompts)
    not_success = [r for r in results if r["status"] != "success"]
    for result in not_success:
        assert "was not sent again" in (result["error"] or ""), result  # an ambiguous create, nothing else
        prompt = f"Turn the dress into clear water. Variation {result['index']}."
        assert prompt in at_kie, f"edit {result['index']} reported ambiguous but never reached Kie"
    assert len(not_success) <= 1, not_success
    assert state == ("failed" if not_success else "success")


def _triggerer_jobs(airflow: RealAirflow) -> list[int]:
    with airflow.db() as db:
        rows = db.execute("SELECT id FROM job WHERE job_type = 'TriggererJob' ORDER BY id").fetchall()
    return [row[0] for row in rows]


def _batch_triggerer(airflow: RealAirflow) -> int | None:
    with airflow.db() as db:
        # Started in the triggerer (KieStartTrigger), or deferred by a worker (KieJobsTrigger).
        row = db.execute(
            "SELECT triggerer_id FROM trigger WHERE classpath LIKE ?", ("airflow_provider_kie.triggers.%",)
        ).fetchone()
    return row[0] if row else None


def _trigger_log(airflow: RealAirflow, job: int) -> str:
    """What the batch's trigger logged while triggerer job ``job`` ran it."""
    files = airflow.home.glob(f"logs/dag_id=kie_batch_operator/**/*.log.trigger.{job}.log")
    return "".join(path.read_text(errors="replace") for path in files)


def _return_value(airflow: RealAirflow) -> list[dict]:
    with airflow.db() as db:
        (value,) = db.execute(
            "SELECT value FROM xcom WHERE dag_id = 'kie_batch_operator' AND key = 'return_value'"
        ).fetchone()
    while isinstance(value, (str, bytes)):
        value = json.loads(value)
    return value
