"""Batch benchmark: a real Airflow (scheduler, triggerer, dag-processor, api-server; LocalExecutor;
SQLite; 127.0.0.1) runs N mapped edits against the emulator with Kie's rate limits on and realistic
generation times, in each of these variants on a fresh Airflow and a fresh emulator:

- ``ours``: example_dags/kie_seedream_batch (deferrable; created and ended in the triggerer);
- ``ours_resume``: the same with ``end_from_trigger=False`` (benchmarks/dags/kie_batch_resume.py);
- ``batch``: the same edits as one SeedreamEditBatchOperator task (benchmarks/dags/kie_batch_operator.py);
- ``peer``: HttpOperator + HttpSensor in reschedule mode (benchmarks/dags/kie_http_peer_batch.py).

Reports the makespan against the rate-limit bound N/2 s + generation time, failed tasks, 429s,
duplicate createTasks, worker runs and worker seconds per image, the triggerer's CPU per image, its
RSS growth and loop stalls, and the XCom writes per image.

    .venv/bin/python benchmarks/batch.py --tasks 100 --generating 20

``--limit-scale 10`` raises Kie's limits (the emulator's and the connection's) tenfold, so a 10,000-edit
batch ends in minutes and what is measured is the provider's own cost:

    .venv/bin/python benchmarks/batch.py --variants batch --tasks 10000 --limit-scale 10
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_kie.connection import connection_json  # noqa: E402
from airflow_provider_kie.emulator import KieEmulator  # noqa: E402
from tests.support import RealAirflow  # noqa: E402

KEY = "batch-key"
VARIANTS = {  # name: (DAG id, the tasks that do the work)
    "ours": ("kie_seedream_batch", ("edit",)),
    "ours_resume": ("kie_batch_resume", ("edit",)),
    "batch": ("kie_batch_operator", ("edits",)),
    "peer": ("kie_http_peer_batch", ("create", "wait")),
}


def dags_folder(parent: Path) -> Path:
    folder = parent / "dags"
    folder.mkdir()
    for source in (ROOT / "example_dags" / "kie_seedream_batch.py", *sorted((HERE / "dags").glob("*.py"))):
        (folder / source.name).symlink_to(source)
    return folder


def run(
    variant: str,
    tasks: int,
    generating: float,
    waiting: float,
    parallelism: int,
    env: dict[str, str],
    limit_scale: int = 1,
) -> dict:
    dag_id, work_tasks = VARIANTS[variant]
    with KieEmulator() as emulator, tempfile.TemporaryDirectory(prefix=f"kie-batch-{variant}-") as tmp:
        emulator.config.update(
            {"rate_limits": True, "waiting_seconds": waiting, "generating_seconds": generating,
             "null_seconds": 1, "credits": 10**9,
             "create_limit": (20 * limit_scale, 10.0), "record_limit": (10 * limit_scale, 1.0)}
        )  # fmt: skip
        limits = {"createTask": [20 * limit_scale, 10], "recordInfo": [10 * limit_scale, 1]}
        connection = connection_json(KEY, emulator.url, upload_base_url=emulator.url, rate_limits=limits)
        home = Path(tmp)
        airflow = RealAirflow(home, connection, dags_folder=dags_folder(home))
        host, port = emulator.url.removeprefix("http://").split(":")
        airflow.env.update(
            {
                "KIE_BATCH_SIZE": str(tasks),
                "KIE_POLL_INTERVAL": "3",
                "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(2 * tasks + 10),
                "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, tasks)),
                "AIRFLOW_CONN_KIE_HTTP": json.dumps(
                    {
                        "conn_type": "http",
                        "host": host,
                        "port": int(port),
                        "schema": "http",
                        "extra": {"Authorization": f"Bearer {KEY}"},
                    }
                ),
            }
        )
        airflow.env.update(env)
        airflow.start_all()
        try:
            airflow.wait_for(f"{dag_id} to be parsed", lambda: airflow.parsed(dag_id))
            triggerer = airflow.processes["triggerer"].pid
            idle_cpu = session_cpu_seconds(triggerer)  # its start-up, not the work
            rss = RssSampler(triggerer)
            airflow.trigger_dag(dag_id)
            try:
                state, start, end = airflow.wait_for(
                    f"{dag_id} to finish", lambda: airflow.finished_run(dag_id), timeout=3600
                )
            finally:
                rss.stop()
            marks = ",".join("?" * len(work_tasks))
            with airflow.db() as db:
                task_states = dict(
                    db.execute(
                        f"SELECT state, count(*) FROM task_instance WHERE task_id IN ({marks}) GROUP BY state",
                        work_tasks,
                    ).fetchall()
                )
                (work_end,) = db.execute(
                    f"SELECT max(end_date) FROM task_instance WHERE task_id IN ({marks})", work_tasks
                ).fetchone()
            triggerer_cpu = session_cpu_seconds(airflow.processes["triggerer"].pid) - idle_cpu
        finally:
            airflow.stop()
        worker_runs = [d for task in work_tasks for d in airflow.worker_runs(task)]  # all logged now
        # The triggerer's watchdog: its loop (asleep 0.1 s at a time) woke later than the threshold.
        blocked = [
            {"at": line[:27], "seconds": float(match.group(1))}
            for line in airflow.log("triggerer").splitlines()
            if (match := re.search(r"was blocked for ([0-9.]+) seconds", line))
        ]
        generation = waiting + generating
        bound = tasks / (2 * limit_scale) + generation
        # The batch's ledger says how many XCom writes its record took (a triggerer writes XCom in
        # process, so the API server's access log does not see them).
        ledger_writes = [
            int(match.group(1))
            for path in home.glob("logs/**/*.trigger.*.log")
            for match in re.finditer(r"its record took (\d+) writes", path.read_text(errors="replace"))
        ]
        makespan = (_parse(work_end) - _parse(start)).total_seconds()
        creates = [r for r in emulator.requests if r.endpoint == "createTask"]
        polls = [r for r in emulator.requests if r.endpoint == "recordInfo"]
        return {
            "variant": variant,
            "dag_id": dag_id,
            "tasks": tasks,
            "parallelism": parallelism,
            "airflow_env": env,
            "generation_seconds": generation,
            "dag_run_state": state,
            "task_states": task_states,
            "makespan_seconds": makespan,
            "dag_run_seconds": (_parse(end) - _parse(start)).total_seconds(),
            "first_create_to_last_poll_seconds": max(r.at for r in polls) - min(r.at for r in creates)
            if polls and creates
            else None,
            # The makespan's parts outside the engine: Airflow's start and the worker's run before the
            # first createTask, and ending the task after the last poll.
            "run_start_to_first_create_seconds": min(r.at for r in creates) - _parse(start).timestamp()
            if creates
            else None,
            "last_poll_to_task_end_seconds": _parse(work_end).timestamp() - max(r.at for r in polls)
            if polls
            else None,
            "rate_limit_bound_seconds": bound,
            "makespan_over_bound": makespan / bound,
            "createTask_requests": len(creates),
            "upload_requests": emulator.count("upload"),
            "kie_tasks_created": len(emulator.state.tasks),
            "duplicate_creates": len(emulator.state.tasks) - tasks,
            "createTask_429s": sum(r.code == 429 for r in creates),
            "recordInfo_requests": len(polls),
            "recordInfo_429s": sum(r.code == 429 for r in polls),
            "recordInfo_per_task": len(polls) / tasks,
            "worker_runs_per_image": len(worker_runs) / tasks,
            "worker_seconds_per_image": sum(worker_runs) / tasks,
            "worker_run_seconds_p50": statistics.median(worker_runs) if worker_runs else None,
            "worker_run_seconds_max": max(worker_runs, default=None),
            "triggerer_cpu_seconds": triggerer_cpu,  # from the DAG run's trigger to its end
            "triggerer_cpu_from": "dag run triggered",
            "triggerer_cpu_seconds_per_image": triggerer_cpu / tasks,
            "triggerer_rss_start_mib": rss.first / 1024,
            "triggerer_rss_growth_mib": (rss.peak - rss.first) / 1024,
            "ledger_xcom_writes": sum(ledger_writes),
            "ledger_xcom_writes_per_image": sum(ledger_writes) / tasks if ledger_writes else None,
            "limit_scale": limit_scale,
            "triggerer_loop_blocked_warnings": len(blocked),
            "triggerer_loop_blocked": blocked,
            "triggers_started_at": [
                line[:27]
                for line in airflow.log("triggerer").splitlines()
                if " starting" in line and "trigger " in line
            ][:3],
        }


class RssSampler:
    """The resident memory (KiB) of a session's processes, sampled every second in a thread."""

    def __init__(self, session_id: int) -> None:
        self.session_id = session_id
        self.first = self.peak = session_rss_kib(session_id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, session_rss_kib(self.session_id))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def session_rss_kib(session_id: int) -> int:
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session_id:
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024  # field 24: rss in pages
        except (OSError, IndexError):
            continue
    return total


def session_cpu_seconds(session_id: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a session: the triggerer and
    the trigger runner it forks (started with start_new_session, so the session id is its pid)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # field 6 of stat: the session id
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace(" ", "T").replace("Z", "+00:00"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--generating", type=float, default=20)
    parser.add_argument("--waiting", type=float, default=2)
    parser.add_argument("--parallelism", type=int, default=32, help="LocalExecutor worker processes")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS)
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra Airflow setting, repeatable"
    )
    parser.add_argument("--limit-scale", type=int, default=1, help="Kie's limits times this")
    parser.add_argument("--out", default=str(HERE / "results" / "batch.json"))
    args = parser.parse_args()
    started = time.time()
    command = " ".join([".venv/bin/python", "benchmarks/batch.py", *sys.argv[1:]])
    report: dict = {"command": command, "variants": {}}
    env = dict(item.split("=", 1) for item in args.env)
    for variant in args.variants.split(","):
        result = run(
            variant, args.tasks, args.generating, args.waiting, args.parallelism, env, args.limit_scale
        )
        print(json.dumps(result, indent=1), flush=True)
        report["variants"][variant] = result
    report["benchmark_wall_seconds"] = time.time() - started
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
