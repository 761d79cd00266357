"""The waiting benchmark still runs against the code it measures (a small run, no figures asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPOSITORY

pytest.importorskip("airflow.providers.http", reason="the benchmark's peer needs the bench extra")


def test_waiting_benchmark_runs_both_waiters(tmp_path):
    out = tmp_path / "waiting.json"
    command = [
        sys.executable,
        "benchmarks/waiting.py",
        "--tasks",
        "3",
        "--generating",
        "0.5",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ours"]["detected"] == report["peer"]["detected"] == 3
