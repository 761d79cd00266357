"""The benchmarks still run against the code they measure (small runs, no figures asserted)."""

from __future__ import annotations

import json
import shutil
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


def test_poll_cost_benchmark_measures_each_kind_of_read(tmp_path):
    out = tmp_path / "poll_cost.json"
    command = [sys.executable, "benchmarks/poll_cost.py", "--polls", "5", "--rounds", "1", "--out", str(out)]
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    cpu = json.loads(out.read_text())["cpu_ms_per_read"]
    assert set(cpu) == {
        f"{kind} {mode}" for kind in ("hook", "trigger", "peer") for mode in ("dense", "sparse")
    }
    assert all(value > 0 for value in cpu.values())


@pytest.mark.skipif(shutil.which("curl") is None, reason="the persist benchmark's baseline uses curl")
def test_persist_benchmark_stores_every_result_in_each_variant(tmp_path):
    out = tmp_path / "persist.json"
    command = [
        sys.executable,
        "benchmarks/persist.py",
        "--results",
        "3",
        "--result-mb",
        "1",
        "--waiting",
        "5",
    ]
    result = subprocess.run(
        [*command, "--out", str(out)], cwd=REPOSITORY, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [report[v]["events_ok"] for v in ("ours", "no_copy", "on_loop")] == [3, 3, 3]
    assert report["ours"]["waiters_still_waiting"] == 5 and report["plain_cp"]["mb_per_s"] > 0


def test_sharing_model_runs_the_limiter_in_virtual_time():
    # two shapes of the table: the whole of it is minutes of CPU on a busy machine
    shapes = "1 process;3 processes, 40 creates each"
    command = [sys.executable, "benchmarks/sharing_model.py", "--seeds", "1", "--variants", "fixed,adaptive",
               "--shapes", shapes]  # fmt: skip
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lone = next(line for line in result.stdout.splitlines() if line.startswith("1 process:"))
    assert "fixed 0.0%" in lone and "adaptive 0.0%" in lone  # alone on a key: never a 429


def test_paced_reads_benchmark_measures_each_way_of_pacing(tmp_path):
    out = tmp_path / "paced_reads.json"
    command = [sys.executable, "benchmarks/paced_reads.py", "--reads", "10", "--out", str(out)]
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert all(report[f"{kind}, bursts of {n}"] > 0 for kind in ("hook", "aiohttp") for n in (1, 5, 10))
