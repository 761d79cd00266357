"""Distributed benchmark: a real Airflow 3.3 on the CeleryExecutor (2 workers, Redis broker) with 3
triggerers (HA) and PostgreSQL, all on one Kie key, against the emulator enforcing Kie's limits (20
createTask per 10 s, 10 recordInfo per s). ``KIE_BATCH_SIZE`` mapped Seedream edits
(benchmarks/dags/kie_sharing_batch.py) in three runs:

- ``deferrable``: created and awaited in the three triggerers;
- ``workers``: ``deferrable=False``, created and awaited in the two workers' slots;
- ``killed``: deferrable, one triggerer SIGKILLed once a third of the edits are created.

Each with the provider's adaptive limiter (``adaptive``), the same told the key is shared by three
processes (``hinted``: connection extra ``sharing_processes`` = 3, the triggerers) and, as the baseline,
the same limiter with its 429 feedback turned off (``fixed``: every process allows Kie's whole limit, the
limiter before issue 12).

    .venv/bin/python benchmarks/distributed.py --edits 300 --out benchmarks/results/distributed.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_kie.emulator import KieEmulator  # noqa: E402
from tests.support import RealAirflow, postgres_server, redis_server  # noqa: E402

RUNS = ("deferrable", "workers", "killed")
LIMITERS = ("adaptive", "hinted", "fixed")
# Loaded first by every Python process of the deployment (PYTHONPATH): the fixed baseline.
FIXED_LIMITER = """
from airflow_provider_kie.hooks import ratelimit
ratelimit.SlidingWindowLimiter.throttled = lambda self, sent_at, retry_after=None: False
"""


def run(name: str, limiter: str, edits: int, generating: float) -> dict:
    with (
        KieEmulator() as emulator,
        postgres_server() as database,
        redis_server() as broker,
        tempfile.TemporaryDirectory(prefix=f"kie-distributed-{name}-") as tmp,
    ):
        emulator.config.update(
            {"rate_limits": True, "waiting_seconds": 2, "generating_seconds": generating, "credits": 10**9}
        )
        root = Path(tmp)
        dag = HERE / "dags" / "kie_sharing_batch.py"
        connection = json.loads(emulator.connection_uri("shared-key"))
        if limiter == "hinted":
            connection["extra"] = {**connection.get("extra", {}), "sharing_processes": 3}
        airflow = RealAirflow.with_dags(
            root, json.dumps(connection), {dag.name: dag.read_text()}, database_url=database
        )
        airflow.env.update(
            {
                "KIE_BATCH_SIZE": str(edits),
                "KIE_DEFERRABLE": "false" if name == "workers" else "true",
                "KIE_POLL_INTERVAL": "3",
                "AIRFLOW__CORE__PARALLELISM": "64",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(2 * edits),
                "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, edits)),
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "30",
                "AIRFLOW__CELERY__BROKER_URL": broker,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database,
            }
        )
        if limiter == "fixed":
            site = root / "site"
            site.mkdir()
            (site / "sitecustomize.py").write_text(FIXED_LIMITER)
            airflow.env["PYTHONPATH"] = f"{site}:{ROOT}"
        airflow.start_deployment(triggerers=3, celery_workers=2, worker_slots=16)
        killed_at = None
        try:
            airflow.trigger_dag("kie_sharing_batch")
            if name == "killed":
                airflow.wait_for(
                    "a third created", lambda: len(emulator.state.tasks) >= edits // 3, timeout=900
                )
                airflow.kill("triggerer-1")
                killed_at = time.time()
            state, start, _ = airflow.wait_for(
                "the batch to finish", lambda: airflow.finished_run("kie_sharing_batch"), timeout=3600
            )
            with airflow.db() as db:
                states = dict(
                    db.execute("SELECT state, count(*) FROM task_instance GROUP BY state").fetchall()
                )
                (work_end,) = db.execute("SELECT max(end_date) FROM task_instance").fetchone()
            # Airflow writes a trigger's log beside its task's, suffixed with the triggerer's job id.
            triggers_per_triggerer: dict[str, int] = {}
            for path in airflow.home.glob("logs/**/*.log.trigger.*.log"):
                job = path.name.rsplit(".", 2)[-2]
                triggers_per_triggerer[job] = triggers_per_triggerer.get(job, 0) + 1
        finally:
            airflow.stop()
        creates = [r for r in emulator.requests if r.endpoint == "createTask"]
        polls = [r for r in emulator.requests if r.endpoint == "recordInfo"]
        throttled = [r for r in creates if r.code == 429]
        prompts = [task.body["input"]["prompt"] for task in emulator.state.tasks.values()]
        generation = 2 + generating
        bound = edits / 2 + generation
        makespan = (work_end - start).total_seconds()
        first = min(r.at for r in creates)
        return {
            "run": name,
            "limiter": limiter,
            "edits": edits,
            "dag_run_state": state,
            "task_states": states,
            "kie_tasks_created": len(prompts),
            "duplicate_creates": len(prompts) - len(set(prompts)),
            "createTask_requests": len(creates),
            "createTask_429s": len(throttled),
            "createTask_429_share": len(throttled) / max(1, len(creates)),
            "createTask_429s_per_10s": [
                sum(1 for r in throttled if first + 10 * i <= r.at < first + 10 * (i + 1))
                for i in range(int((max(r.at for r in creates) - first) // 10) + 1)
            ],
            "recordInfo_requests": len(polls),
            "recordInfo_429s": sum(r.code == 429 for r in polls),
            "first_createTask_after_start_seconds": first - start.timestamp(),
            "createTask_phase_seconds": max(r.at for r in creates if r.code != 429) - first,
            "last_createTask_to_end_seconds": work_end.timestamp() - max(r.at for r in creates),
            "triggers_per_triggerer": dict(sorted(triggers_per_triggerer.items())),
            "makespan_seconds": makespan,
            "rate_limit_bound_seconds": bound,
            "makespan_over_bound": makespan / bound,
            "triggerer_killed_after_seconds": killed_at and killed_at - start.timestamp(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--edits", type=int, default=300)
    parser.add_argument("--generating", type=float, default=20)
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--limiters", default=",".join(LIMITERS))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "distributed.json")
    args = parser.parse_args()
    command = " ".join([".venv/bin/python", "benchmarks/distributed.py", *sys.argv[1:]])
    report: dict = {"command": command, "runs": []}
    for name in args.runs.split(","):
        for limiter in args.limiters.split(","):
            if name == "workers" and limiter == "hinted":
                continue  # a worker's task process creates once: a starting share changes nothing there
            result = run(name, limiter, args.edits, args.generating)
            print(json.dumps(result), flush=True)
            report["runs"].append(result)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
