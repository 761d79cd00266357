"""Test session set-up: a throwaway AIRFLOW_HOME before Airflow is imported anywhere."""

from __future__ import annotations

import os
import tempfile

_home = tempfile.mkdtemp(prefix="kie-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

import pytest  # noqa: E402

from airflow_provider_kie.hooks.kie import RetryPolicy  # noqa: E402

FAST_RETRIES = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, rate_limited_budget=0.5)


@pytest.fixture
def fast_retries() -> RetryPolicy:
    return FAST_RETRIES


@pytest.fixture(autouse=True, scope="session")
def offline_docs(kie_emulator_server, tmp_path_factory):
    """No test reads Kie's real pages: the catalog's recheck reads the session emulator's (tests that
    change the pages use ``kie_emulator``, which gives each test its own page cache)."""
    from airflow_provider_kie import pages

    os.environ[pages.DOCS_URL_ENV] = kie_emulator_server.url
    os.environ[pages.CACHE_DIR_ENV] = str(tmp_path_factory.mktemp("kie-cache"))
    yield
    pages.forget()


# --------------------------------------------------------------------------- docs/reliability.md
# Tests marked `fault` or `bad_input` are rows of docs/reliability.md. With KIE_RELIABILITY_REPORT=path
# set, the session writes that table from its own results (scripts/reliability-report does this).

_ROWS: list[dict] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("fault") or item.get_closest_marker("bad_input")
    if marker is None or report.when != "call":
        return
    counts = {}
    emulator = getattr(item, "funcargs", {}).get("kie_emulator")
    if emulator is not None:  # what the emulator saw, unless the test recorded it itself
        counts = {"create_requests": emulator.count("createTask"), "tasks_created": len(emulator.state.tasks)}
    _ROWS.append(
        {
            "kind": marker.name,
            "test": item.nodeid,
            "passed": report.passed,
            **marker.kwargs,
            **counts,
            **dict(report.user_properties),
        }
    )


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("KIE_RELIABILITY_REPORT")
    if path and _ROWS:
        from tests.reliability_report import write_report

        write_report(path, _ROWS)


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-protocol server (moto's) for this session, and its Airflow connection in the env."""
    from tests.support import S3Server

    server = S3Server().start()
    os.environ.update(server.env)
    yield server
    server.stop()
