"""Several processes on one key, each with its own limiter, against the emulator enforcing Kie's createTask
limit (scaled to a 2 s window): every task is created exactly once, and each process that meets Kie's
429s learns from them, with nothing shared between the processes. How many 429s each variant meets is
measured in benchmarks/sharing.py, not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import AIRFLOW_3, REPOSITORY

# The limiter is plain Python, the same under both Airflow versions: run once, where CI has time.
pytestmark = pytest.mark.skipif(not AIRFLOW_3, reason="the limiter does not depend on Airflow's version")

PROCESSES, CREATES = 3, 60


@pytest.fixture(scope="module")
def sharing(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharing") / "sharing.json"
    command = [sys.executable, "benchmarks/sharing.py", "--processes", str(PROCESSES), "--creates", str(CREATES),
               "--window", "2", "--concurrency", "8", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())["variants"]


@pytest.mark.parametrize("variant", ["fixed", "adaptive", "hinted", "capped"])
def test_every_task_is_created_exactly_once(sharing, variant):
    run = sharing[variant]
    assert (run["kie_tasks_created"], run["duplicate_creates"]) == (CREATES, 0)
    assert sum(process["creates"] for process in run["per_process"]) == CREATES


def test_a_process_that_meets_429s_cuts_its_rate(sharing):
    run = sharing["adaptive"]
    assert run["createTask_429s"] > 0  # three processes starting together at 8 calls each overfill 20
    for process in run["per_process"]:
        rates = [rate for _, rate in process["allowed_rate"]]
        assert rates[0] == 20  # alone as far as it knows
        if process["429s_seen"]:
            assert process["rate_cuts"] >= 1 and min(rates) < 20


def test_the_fixed_limiter_never_adapts(sharing):
    for process in sharing["fixed"]["per_process"]:
        assert process["rate_cuts"] == 0
        assert {rate for _, rate in process["allowed_rate"]} == {20}


def test_told_how_many_share_the_key_each_process_starts_at_its_share(sharing):
    for process in sharing["hinted"]["per_process"]:
        assert process["allowed_rate"][0][1] == pytest.approx(20 / PROCESSES, abs=0.01)


def test_capped_processes_never_exceed_their_share(sharing):
    for process in sharing["capped"]["per_process"]:
        assert max(rate for _, rate in process["allowed_rate"]) <= round(
            20 / PROCESSES, 2
        )  # samples: 2 decimals
