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
import airflow_provider_kie.triggers.batch
from airflow_provider_kie.triggers.heap import freeze_triggerer_heap
print(gc.get_freeze_count() > 0, freeze_triggerer_heap())
"""


IMPORT_AIOHTTP_FOR_A_HOOK = """
import asyncio, sys, threading

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp":
            print(threading.current_thread() is threading.main_thread())
        return None

sys.meta_path.insert(0, Spy())
from airflow_provider_kie.hooks import sessions
module = asyncio.run(sessions.load_aiohttp())
print(module is sys.modules["aiohttp"], hasattr(module, "ClientSession"))
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


def test_aiohttp_is_imported_in_a_thread_not_on_the_event_loop():
    imported_on_main_thread, loaded = _run(IMPORT_AIOHTTP_FOR_A_HOOK).split("\n")[:2]
    assert (imported_on_main_thread, loaded) == ("False", "True True")
