"""Helpers shared by the test suite and the benchmarks (fixtures live in the conftest files)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import airflow
from packaging.version import Version

from airflow_provider_kie.hooks.sessions import close_shared_async_sessions
from airflow_provider_kie.testing import free_port

AIRFLOW_VERSION = Version(Version(airflow.__version__).base_version)
AIRFLOW_3 = Version("3") <= AIRFLOW_VERSION
AIRFLOW_33 = Version("3.3") <= AIRFLOW_VERSION
#: The ``airflow`` command of the environment running the tests.
AIRFLOW = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLES = REPOSITORY / "example_dags"

EDIT_INPUT = {
    "prompt": "Turn the dress into clear water",
    "image_urls": ["https://static.aiquickdraw.com/tools/example/1764851484363_ScV1s2aq.webp"],
    "aspect_ratio": "1:1",
    "quality": "basic",
}


class FakeTI:
    """Just enough of a task instance for xcom_push, the resumable mixin's stats tags and a callback
    URL's reference."""

    stats_tags: dict = {}
    dag_id, task_id, run_id, map_index = "dag", "edit", "manual__2026-11-29", -1

    def __init__(self):
        self.xcom: dict = {}

    def xcom_push(self, key, value):
        json.dumps(value)  # XCom must be JSON-safe
        self.xcom[key] = value


class DictStateStore(dict):
    def set(self, key, value, **_):
        self[key] = value


class CallbackReceiver:
    """A callBackUrl on 127.0.0.1 that records (headers, raw body) of each POST and answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.url = ""

    async def wait(self, count: int = 1, timeout: float = 5.0) -> list[tuple[dict, bytes]]:
        for _ in range(int(timeout / 0.05)):
            if len(self.received) >= count:
                break
            await asyncio.sleep(0.05)
        return self.received


class TriggererXCom(dict):
    """The XCom of one task instance as a triggerer would read and write it, kept in memory.

    ``run_in_triggerer`` gives a trigger the task instance a triggerer gives it, so it takes the paths it
    takes there: create and remember the Kie task, end the Airflow task itself on success.
    """

    ti = SimpleNamespace(dag_id="dag", task_id="edit", run_id="run", map_index=-1, try_number=1)

    async def aset(self, key, value, **target):
        assert target == {k: getattr(self.ti, k) for k in ("dag_id", "task_id", "run_id", "map_index")}
        self[key] = json.loads(json.dumps(value))  # XCom must be JSON-safe

    async def aget_one(self, *, key, **target):
        return self.get(key)

    def serialize_value(self, *, value, key, **target):  # push_xcoms(in_thread=True) calls it in a thread
        return json.loads(json.dumps(value))

    def stop_when(self, trigger, condition, timeout: float = 30.0) -> None:
        """Run ``trigger`` with this task instance until ``condition()`` holds, then stop it as a killed
        triggerer would (it yields no event)."""
        trigger.task_instance = self.ti

        async def main():
            running = asyncio.ensure_future(anext(trigger.run()))
            try:
                for _ in range(int(timeout / 0.05)):
                    assert not running.done(), f"the trigger ended first: {running.result()!r}"
                    if condition():
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError("the condition never held")
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                await close_shared_async_sessions()

        asyncio.run(main())

    def run_in_triggerer(self, trigger):
        """The first event of ``trigger`` run with this task instance; on Airflow 2 the event's XCom is
        stored here, as the triggerer does."""
        trigger.task_instance = self.ti

        async def first():
            try:
                async for event in trigger.run():
                    return event
            finally:
                await close_shared_async_sessions()

        event = asyncio.run(first())
        if getattr(event, "xcoms", None):
            self.update(event.xcoms)
        return event


def debian_program(program: str, package: str) -> str:
    """The path of ``program``; installs Debian's ``package`` first when the machine lacks it (CI starts
    from a clean machine; Debian's archive is one of the registries it reaches)."""

    def find() -> str | None:
        found = shutil.which(program) or next(
            iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{program}"))), None
        )
        return str(found) if found else None

    if (path := find()) is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
            subprocess.run(install, env=env, capture_output=True, check=True)
        path = find()
    assert path, f"{program} is not on this machine and Debian's {package} did not provide it"
    return path


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{what} exited with {process.returncode}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway Redis (Debian's redis-server) on 127.0.0.1, for Celery's broker: its URL."""
    port = free_port()
    server = subprocess.Popen(
        [
            *(debian_program("redis-server", "redis-server"), "--bind", "127.0.0.1", "--port", str(port)),
            *("--save", "", "--appendonly", "no", "--protected-mode", "no"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(20)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL (Debian's) on 127.0.0.1 with a database ``airflow``: its SQLAlchemy URL.
    Airflow runs several triggerers (HA) only on a database with row locks that skip locked rows."""
    import tempfile

    initdb = debian_program("initdb", "postgresql")
    bin_dir = Path(initdb).resolve().parent
    data = Path(tempfile.mkdtemp(prefix="kie-postgres-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(data, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        capture_output=True,
        check=True,
    )
    port = free_port()
    settings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=300"]
    server = subprocess.Popen(
        [
            *(*as_postgres, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(data)),
            *("-h", "127.0.0.1", *(arg for setting in settings for arg in ("-c", setting))),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server, "postgres")
        import psycopg2

        for attempt in range(100):  # listening comes a moment before accepting logins
            try:
                with closing(psycopg2.connect(host="127.0.0.1", port=port, user="postgres")) as admin:
                    admin.autocommit = True
                    admin.cursor().execute("CREATE DATABASE airflow")
                break
            except psycopg2.OperationalError:
                if attempt == 99:
                    raise
                time.sleep(0.2)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/airflow"
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(data, ignore_errors=True)


class _Postgres:
    """The slice of sqlite3's connection API that the helpers below use, on a PostgreSQL connection."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Any = ()) -> Any:
        cursor = self.connection.cursor()
        cursor.execute(sql.replace("?", "%s"), params)
        return cursor


class RealAirflow:
    def __init__(self, home: Path, conn: str, dags_folder: Path = EXAMPLES, database_url: str | None = None):
        port = free_port()
        self.home = home
        self.database_url = database_url
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
        if database_url:
            self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
        self.processes: dict[str, subprocess.Popen] = {}

    @classmethod
    def with_dags(
        cls, root: Path, conn: str, dags: dict[str, str], database_url: str | None = None
    ) -> RealAirflow:
        """An Airflow home under ``root`` whose DAG folder holds ``dags`` (file name -> source)."""
        folder = root / "dags"
        folder.mkdir()
        for name, source in dags.items():
            (folder / name).write_text(source)
        (root / "home").mkdir()
        return cls(root / "home", conn, folder, database_url)

    def call_kie_back(self, connection: dict, webhook_secret: str) -> str:
        """Set ``connection`` (a kie_default dict) with callbacks to this Airflow's ``/kie`` plugin,
        signed with ``webhook_secret``; returns the API server's base URL."""
        base_url = f"http://127.0.0.1:{self.env['AIRFLOW__API__PORT']}"
        extra = {
            **connection.get("extra", {}),
            "callback_base_url": base_url,
            "webhook_secret": webhook_secret,
        }
        self.env["AIRFLOW_CONN_KIE_DEFAULT"] = json.dumps({**connection, "extra": extra})
        return base_url

    def start_all(self, *components: str) -> None:
        """Create the metadata database, then start ``components`` (by default every one a DAG needs)."""
        self.cli("db", "migrate")
        for component in components or ("api-server", "scheduler", "dag-processor", "triggerer"):
            self.start(component)

    def start_deployment(
        self, *, triggerers: int = 1, celery_workers: int = 0, worker_slots: int = 16
    ) -> None:
        """Create the metadata database, then start Airflow as a deployment that outgrew one machine
        would run it: ``triggerers`` triggerers (HA) and, with ``celery_workers``, the CeleryExecutor
        with that many workers of ``worker_slots`` each (the broker set in ``env`` beforehand)."""
        if celery_workers:
            self.env["AIRFLOW__CORE__EXECUTOR"] = "CeleryExecutor"
            self.env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(worker_slots)
        self.start_all("api-server", "scheduler", "dag-processor")
        for n in range(1, triggerers + 1):  # only one of them could serve logs on the default port
            self.start("triggerer", "--skip-serve-logs", name=f"triggerer-{n}")
        for n in range(1, celery_workers + 1):
            self.start("celery worker", "--skip-serve-logs", "-H", f"worker-{n}@%h", name=f"worker-{n}")

    def cli(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, (
            f"airflow {' '.join(args)}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
        return result.stdout

    def start(self, component: str, *args: str, name: str | None = None) -> None:
        """Start ``airflow component args``, known (and logged) as ``name`` (several triggerers or
        workers each have their own)."""
        name = name or component
        log = open(self.home / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            [AIRFLOW, *component.split(), *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self, component: str) -> str:
        return (self.home / f"{component}.log").read_text(errors="replace")

    def task_log(self, map_index: int) -> str:
        """Every log file of the mapped task instance ``map_index`` (each try, the worker's and the
        trigger's)."""
        files = sorted(self.home.glob(f"logs/**/map_index={map_index}/*.log"))
        return "\n".join(path.read_text(errors="replace") for path in files)

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

    def parsed(self, dag_id: str) -> bool:
        with self.db() as db:
            return db.execute("SELECT 1 FROM dag WHERE dag_id = ?", (dag_id,)).fetchone() is not None

    def trigger_dag(self, dag_id: str) -> None:
        """Wait until the dag-processor has parsed ``dag_id``, then unpause it and start a run."""
        self.wait_for(f"{dag_id} to be parsed", lambda: self.parsed(dag_id))
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

    @contextmanager
    def db(self) -> Iterator[Any]:
        """A connection to the metadata database, closed on exit so no read lock outlives a check."""
        if self.database_url:
            import psycopg2

            dsn = self.database_url.replace("postgresql+psycopg2://", "postgresql://")
            with closing(psycopg2.connect(dsn)) as connection:
                connection.autocommit = True
                yield _Postgres(connection)
            return
        with closing(sqlite3.connect(self.home / "airflow.db", timeout=30)) as connection:
            yield connection

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
        raise AssertionError(f"timed out waiting for {what}\n{self.describe()}\n{logs}")

    def describe(self) -> str:
        """The runs, DAGs and task instance states in the metadata database, for a failure message."""
        with self.db() as db:
            runs = db.execute("SELECT dag_id, run_id, state, run_after, queued_at, start_date FROM dag_run")
            dags = db.execute("SELECT dag_id, is_paused, is_stale, last_parsed_time FROM dag")
            tis = db.execute(
                "SELECT dag_id, task_id, state, count(*) FROM task_instance GROUP BY dag_id, task_id, state"
            )
            return "\n".join(
                [
                    "--- dag_run",
                    *map(str, runs.fetchall()),
                    "--- dag",
                    *map(str, dags.fetchall()),
                    "--- task_instance",
                    *map(str, tis.fetchall()),
                ]
            )


def secret_occurrences(root: Path, secret: str) -> dict[str, int]:
    """Every file under ``root`` (logs, the SQLite database with XCom, rendered fields, triggers...)."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            count = path.read_bytes().count(secret.encode())
            if count:
                found[str(path.relative_to(root))] = count
    return found


def run_trigger(trigger):
    """The payload of the one event ``trigger`` yields, run in a loop of its own (no task instance)."""

    async def first():
        events = [event async for event in trigger.run()]
        await close_shared_async_sessions()
        assert len(events) == 1
        return events[0].payload

    return asyncio.run(first())


class S3Server:
    """moto's standalone S3-protocol server on 127.0.0.1, and an Airflow ``aws`` connection to it."""

    CONN_ID = "kie_test_s3"

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    @property
    def connection(self) -> str:
        """The connection as JSON, for ``AIRFLOW_CONN_KIE_TEST_S3``."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": "kie-test",
                "password": "kie-test-secret",
                "extra": {"endpoint_url": self.url, "region_name": "us-east-1"},
            }
        )

    @property
    def env(self) -> dict[str, str]:
        return {f"AIRFLOW_CONN_{self.CONN_ID.upper()}": self.connection}

    def start(self) -> S3Server:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client().list_buckets()
                return self
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start on port {self.port}")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="kie-test",
            aws_secret_access_key="kie-test-secret",
            region_name="us-east-1",
        )

    def bucket(self, name: str) -> str:
        """Create bucket ``name`` (if needed) and return its URI with the connection: ``s3://conn@name``."""
        try:
            self.client().create_bucket(Bucket=name)
        except Exception as error:
            if "BucketAlreadyOwnedByYou" not in str(error):
                raise
        return f"s3://{self.CONN_ID}@{name}"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))
