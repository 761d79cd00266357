"""What keeps the triggerer's event loop free: its heap frozen once, when it loads its first Kie trigger
(and only there), and aiohttp imported off the loop.

Each case runs in its own interpreter: gc.freeze() and imports are process-wide.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LOAD_A_KIE_TRIGGER = """
import gc, sys
{prelude}
import airflow_provider_kie.triggers.jobs
from airflow_provider_kie.triggers.heap import freeze_triggerer_heap
print(gc.get_freeze_count() > 0, freeze_triggerer_heap())
"""


IMPORT_AIOHTTP_FOR_A_HOOK = """
import asyncio, sys, threading

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp":
            print("imported on the loop's thread:", threading.current_thread() is threading.main_thread())
        return None

sys.meta_path.insert(0, Spy())
from airflow_provider_kie.exceptions import KieError
from airflow_provider_kie.hooks.kie import KieAsyncHook, RetryPolicy

async def ask():
    try:
        await KieAsyncHook(retry_policy=RetryPolicy(max_attempts=1)).get_credits()
    except KieError as error:
        print("asked:", type(error).__name__)

asyncio.run(ask())
"""


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


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
    assert _run(LOAD_A_KIE_TRIGGER.format(prelude=prelude), **env).split("\n")[-2] == expected


def test_a_hook_imports_aiohttp_in_a_thread_not_on_the_event_loop():
    from airflow_provider_kie.connection import connection_json
    from airflow_provider_kie.testing import free_port

    refused = connection_json("test-key-1", f"http://127.0.0.1:{free_port()}")  # nothing listens: refused
    output = _run(IMPORT_AIOHTTP_FOR_A_HOOK, AIRFLOW_CONN_KIE_DEFAULT=refused).splitlines()
    lines = [line for line in output if line.startswith(("imported on", "asked:"))]  # not Airflow's logs
    assert lines == ["imported on the loop's thread: False", "asked: KieNotSentError"]
