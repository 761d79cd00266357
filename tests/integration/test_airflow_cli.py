"""What an operator of Airflow sees: the provider, its connection type, and the Test button's check."""

from __future__ import annotations

import os
import subprocess

import pytest

from airflow_provider_kie.testing import EMULATOR_API_KEY
from tests.support import AIRFLOW


def airflow(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AIRFLOW, *args], capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})}
    )


def test_providers_list_shows_the_package():
    result = airflow("providers", "list")
    assert "airflow-provider-kie" in result.stdout, result.stderr[-2000:]


def test_providers_hooks_shows_the_kie_connection_type():
    result = airflow("providers", "hooks")
    line = next(line for line in result.stdout.splitlines() if line.startswith("kie "))
    assert "airflow_provider_kie.hooks.kie.KieHook" in line and "kie_conn_id" in line


@pytest.mark.parametrize(
    ("key", "expected"), [(EMULATOR_API_KEY, "Connection success!"), ("wrong-key", "401")]
)
def test_connections_test_reports_the_balance(kie_emulator, key, expected):
    if key == "wrong-key":
        kie_emulator.config.api_keys = [EMULATOR_API_KEY]
    env = {
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW_CONN_KIE_DEFAULT": kie_emulator.connection_uri(key),
    }
    result = airflow("connections", "test", "kie_default", env=env)
    assert expected in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    assert kie_emulator.count("credit") == 1
    assert EMULATOR_API_KEY not in result.stdout + result.stderr
