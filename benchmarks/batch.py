"""Batch benchmark: a real Airflow (scheduler, triggerer, dag-processor, api-server; LocalExecutor;
SQLite; 127.0.0.1) runs kie_seedream_batch with N mapped edits against the emulator with Kie's rate
limits on and realistic generation times. Reports the makespan against the rate-limit bound
N/2 s + generation time, failed tasks, 429s seen, duplicate createTasks and worker seconds per image.

    .venv/bin/python benchmarks/batch.py --tasks 100 --generating 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from airflow_provider_kie.emulator import KieEmulator  # noqa: E402
from tests.system.test_real_airflow import RealAirflow  # noqa: E402


def run(tasks: int, generating: float, waiting: float) -> dict:
    with KieEmulator() as emulator, tempfile.TemporaryDirectory(prefix="kie-batch-") as home:
        emulator.config.update(
            {"rate_limits": True, "waiting_seconds": waiting, "generating_seconds": generating,
             "null_seconds": 1, "credits": 10**9}
        )  # fmt: skip
        airflow = RealAirflow(Path(home), emulator.connection_uri("batch-key"))
        airflow.env.update(
            {
                "KIE_BATCH_SIZE": str(tasks),
                "KIE_POLL_INTERVAL": "3",
                "AIRFLOW__CORE__PARALLELISM": "32",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(tasks + 10),
                "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, tasks)),
            }
        )
        airflow.cli("db", "migrate")
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            airflow.start(component)
        try:
            airflow.trigger_dag("kie_seedream_batch")
            state, start, end = airflow.wait_for(
                "the batch to finish", lambda: airflow.finished_run("kie_seedream_batch"), timeout=1800
            )
            with airflow.db() as db:
                edit_states = db.execute(
                    "SELECT state, count(*) FROM task_instance WHERE task_id = 'edit' GROUP BY state"
                ).fetchall()
                first_create = min(r.at for r in emulator.requests if r.endpoint == "createTask")
            worker_runs = airflow.worker_runs("edit")
        finally:
            airflow.stop()
        makespan = (_parse(end) - _parse(start)).total_seconds()
        generation = waiting + generating
        bound = tasks / 2 + generation
        creates = [r for r in emulator.requests if r.endpoint == "createTask"]
        polls = [r for r in emulator.requests if r.endpoint == "recordInfo"]
        return {
            "tasks": tasks,
            "generation_seconds": generation,
            "dag_run_state": state,
            "edit_task_states": dict(edit_states),
            "makespan_seconds": makespan,
            "makespan_from_first_create_seconds": max(r.at for r in polls) - first_create if polls else None,
            "rate_limit_bound_seconds": bound,
            "makespan_over_bound": makespan / bound,
            "createTask_requests": len(creates),
            "kie_tasks_created": len(emulator.state.tasks),
            "duplicate_creates": len(emulator.state.tasks) - tasks,
            "createTask_429s": sum(r.code == 429 for r in creates),
            "recordInfo_429s": sum(r.code == 429 for r in polls),
            "recordInfo_per_task": len(polls) / tasks,
            "worker_runs_per_image": len(worker_runs) / tasks,
            "worker_seconds_per_image": sum(worker_runs) / tasks,
        }


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace(" ", "T").replace("Z", "+00:00"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--generating", type=float, default=20)
    parser.add_argument("--waiting", type=float, default=2)
    parser.add_argument("--out", default=str(HERE / "results" / "batch.json"))
    args = parser.parse_args()
    started = time.time()
    report = run(args.tasks, args.generating, args.waiting)
    report["benchmark_wall_seconds"] = time.time() - started
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
