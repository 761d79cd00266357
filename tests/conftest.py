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

FAST_RETRIES = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def fast_retries() -> RetryPolicy:
    return FAST_RETRIES
