"""The triggerer's heap is frozen once, when it loads its first Kie trigger, and only there.

Each case runs in its own interpreter: gc.freeze() is process-wide and must not touch pytest's heap.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LOAD_A_KIE_TRIGGER = """
import gc, sys
{prelude}
import airflow_provider_kie.triggers.batch
from airflow_provider_kie.triggers.heap import freeze_triggerer_heap
print(gc.get_freeze_count() > 0, freeze_triggerer_heap())
"""


def _frozen(prelude: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", LOAD_A_KIE_TRIGGER.format(prelude=prelude)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\n")[-2]


@pytest.mark.parametrize(
    ("prelude", "env", "expected"),
    [
        # a triggerer: frozen when the trigger module loads, and not again by a later call
        ("import airflow.jobs.triggerer_job_runner", {}, "True False"),
        # a worker or a DAG parser: left alone
        ("", {}, "False False"),
        # turned off by the provider's setting
        (
            "import airflow.jobs.triggerer_job_runner",
            {"AIRFLOW__KIE__TRIGGERER_FREEZE_HEAP": "False"},
            "False False",
        ),
    ],
    ids=["triggerer", "not-a-triggerer", "turned-off"],
)
def test_the_heap_is_frozen_only_in_a_triggerer(prelude, env, expected):
    assert _frozen(prelude, **env) == expected
