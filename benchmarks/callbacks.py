"""Callbacks benchmark: a real Airflow 3.3 (PostgreSQL, scheduler, one triggerer, API server with the
provider's /kie plugin) runs N separate deferrable edits that all wait in the triggerer at once, against
the emulator enforcing Kie's 10 recordInfo per second per key and calling back as Kie does.

Variants, one after another: ``polling`` (no callback_base_url: today's polling), ``callbacks``, and
``callbacks-lost`` (the emulator loses 10 % of its callbacks; the safety-net polls must find them).
Creates are let through fast (a create limit far above Kie's 20 per 10 s) and generation takes 60 s plus
up to 240 s more, so all N tasks wait together and end spread over four minutes, as a long batch does.

Detection latency: from the moment the emulator's task ended to the first recordInfo that saw it ended
(what the waiting trigger learns); end latency: to the end of its Airflow task.

    .venv/bin/python benchmarks/callbacks.py --tasks 1000 --dags 10
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_kie.emulator import KieEmulator  # noqa: E402
from tests.support import RealAirflow, postgres_server  # noqa: E402

VARIANTS = {"polling": None, "callbacks": 0.0, "callbacks-lost": 0.1}
DAG = HERE / "dags" / "kie_wide_edits.py"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(variant: str, tasks: int, dags: int, generating: float, spread: float) -> dict:
    drop_rate = VARIANTS[variant]
    secret = "whk-" + secrets.token_hex(8)
    with (
        KieEmulator() as emulator,
        postgres_server() as database,
        tempfile.TemporaryDirectory(prefix=f"kie-callbacks-{variant}-") as tmp,
    ):
        emulator.config.update(
            {
                "rate_limits": True,
                "create_limit": [100_000, 10],
                "waiting_seconds": 1,
                "generating_seconds": generating,
                "generating_spread_seconds": spread,
                "credits": 10**9,
                "callback_secret": secret,
                "callback_drop_rate": drop_rate or 0.0,
            }
        )
        connection = json.loads(emulator.connection_uri("benchmark-key"))
        airflow = RealAirflow.with_dags(Path(tmp), "{}", {DAG.name: DAG.read_text()}, database_url=database)
        connection["extra"]["rate_limits"] = {"createTask": [100_000, 10], "recordInfo": [10, 1]}
        airflow.env["AIRFLOW_CONN_KIE_DEFAULT"] = json.dumps(connection)
        if drop_rate is not None:
            airflow.call_kie_back(connection, secret)
        airflow.env.update(
            {
                "KIE_WIDE_TASKS": str(tasks),
                "KIE_WIDE_DAGS": str(dags),
                "AIRFLOW__CORE__PARALLELISM": "64",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(2 * tasks),
                "AIRFLOW__TRIGGERER__CAPACITY": str(2 * tasks),
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "60",
                # OpenLineage's listener would resume each task on a worker after its success (only a
                # worker calls listeners): the tasks end in the triggerer, as they do without it.
                "AIRFLOW__OPENLINEAGE__DISABLED": "True",
            }
        )
        airflow.start_all()
        try:
            dag_ids = [f"kie_wide_edits_{d:02d}" for d in range(dags)]
            for dag_id in dag_ids:
                airflow.trigger_dag(dag_id)

            def finished_runs() -> list | None:
                runs = [airflow.finished_run(dag_id) for dag_id in dag_ids]
                return runs if all(runs) else None

            runs = airflow.wait_for("the runs to finish", finished_runs, timeout=3600)
            state = "success" if all(r[0] == "success" for r in runs) else "failed"
            start = min(r[1] for r in runs)
            stalls = airflow.log("triggerer").count("event loop appears deadlocked")
            with airflow.db() as db:
                ends = dict(db.execute("SELECT task_id, end_date FROM task_instance").fetchall())
                states = dict(
                    db.execute("SELECT state, count(*) FROM task_instance GROUP BY state").fetchall()
                )
                ids = dict(db.execute("SELECT task_id, value FROM xcom WHERE key = 'kie_task_id'").fetchall())
        finally:
            airflow.stop()
        polls = [r for r in emulator.requests if r.endpoint == "recordInfo"]
        # Detection: from the moment Kie's task ended to the first read of it that saw it ended.
        first_read_after_end: dict[str, float] = {}
        for r in polls:
            task = emulator.state.tasks.get(r.query.get("taskId", ""))
            if task is not None and r.code == 200 and r.at >= task.done_at:
                first_read_after_end.setdefault(task.task_id, r.at - task.done_at)
        detected = list(first_read_after_end.values())
        # Where a detection's time goes: Kie's end to the callback answered by the API server.
        answered = [
            c["answered_at"] - emulator.state.tasks[c["task_id"]].done_at
            for c in emulator.state.callbacks
            if c.get("answered_at")
        ]
        latencies = []  # and to the end of the Airflow task
        for task_id, value in ids.items():
            kie_id = value if value in emulator.state.tasks else json.loads(value)  # PostgreSQL decodes JSON
            if ends.get(task_id) is not None:
                latencies.append(ends[task_id].timestamp() - emulator.state.tasks[kie_id].done_at)
        delivered = [c for c in emulator.state.callbacks if c.get("delivered")]
        return {
            "variant": variant,
            "tasks": tasks,
            "dags": dags,
            "dag_run_state": state,
            # Airflow's warning that the trigger runner's loop sent nothing for 30 s or more.
            "triggerer_stalls": stalls,
            "task_states": states,
            "lost_tasks": tasks - states.get("success", 0),
            "callbacks_delivered": len(delivered),
            "callbacks_lost": sum(1 for c in emulator.state.callbacks if c.get("dropped")),
            "tasks_detected": len(detected),
            "detection_latency_p50_seconds": percentile(detected, 0.5),
            "detection_latency_p99_seconds": percentile(detected, 0.99),
            "detection_latency_max_seconds": max(detected),
            "detection_latency_mean_seconds": statistics.mean(detected),
            "callback_answered_p50_seconds": percentile(answered, 0.5) if answered else None,
            "callback_answered_p99_seconds": percentile(answered, 0.99) if answered else None,
            "end_latency_p50_seconds": percentile(latencies, 0.5),
            "end_latency_p99_seconds": percentile(latencies, 0.99),
            "recordInfo_requests": len(polls),
            "recordInfo_per_task": len(polls) / tasks,
            "recordInfo_429s": sum(r.code == 429 for r in polls),
            "makespan_seconds": (max(e for e in ends.values() if e) - start).total_seconds(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--dags", type=int, default=10, help="DAGs the tasks are split over")
    parser.add_argument("--generating", type=float, default=60)
    parser.add_argument("--spread", type=float, default=240)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "callbacks.json")
    args = parser.parse_args()
    runs = []
    for variant in args.variants.split(","):
        result = run(variant, args.tasks, args.dags, args.generating, args.spread)
        print(json.dumps(result), flush=True)
        runs.append(result)
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
