"""The callback URL and its token, and the triggerer's hint reader (one listing for every waiter)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_kie import hints as hints_module
from airflow_provider_kie.callbacks import (
    HINT_PREFIX,
    HINTS_HEADER,
    CallbackTarget,
    callback_token,
    calls_back,
    hints_token,
)
from airflow_provider_kie.events import JobRef
from airflow_provider_kie.hints import CallbackWait, HintReader, PluginHintLister

TARGET = CallbackTarget("kie_default", "dag", "edit", "manual__2026-11-29T00:00:00+00:00", 3)


def test_callback_url_names_its_task_instance_and_carries_a_token_of_the_key():
    url = TARGET.url("https://airflow.example.com/", "kie-key")
    base, _, token = url.partition("?token=")
    assert base == f"https://airflow.example.com/kie/callbacks/{TARGET.ref}"
    assert CallbackTarget.from_ref(TARGET.ref) == TARGET
    assert token == callback_token("kie-key", TARGET.ref)
    assert "kie-key" not in url
    assert callback_token("another-key", TARGET.ref) != token  # only the key's holder mints it
    other = CallbackTarget("kie_default", "dag", "edit", TARGET.run_id, 4)
    assert callback_token("kie-key", other.ref) != token  # and it wakes only its own task instance


def test_a_task_calls_back_when_its_callback_url_is_this_deployments_plugin():
    url = TARGET.url("https://airflow.example.com/base/", "kie-key")
    assert calls_back({"callBackUrl": url}, "https://airflow.example.com/base")
    assert not calls_back({"callBackUrl": url}, "https://airflow.example.com")
    assert not calls_back(
        {"callBackUrl": "https://hooks.example.com/kie/callbacks/x"}, "https://hooks.example.com/k"
    )
    assert not calls_back({}, "https://airflow.example.com/base") and not calls_back(None, "https://a")


@pytest.mark.parametrize("ref", ["", "x", "bm90IGpzb24", "WzEsMiwzXQ", "WyJhIiwiYiIsImMiLCJkIiwiZSJd"])
def test_a_reference_the_provider_cannot_have_minted_is_refused(ref):
    with pytest.raises(ValueError):
        CallbackTarget.from_ref(ref)


def test_one_listing_wakes_every_task_named_and_no_other():
    listings = []

    def list_keys():
        listings.append(1)
        return frozenset({HINT_PREFIX + "a", HINT_PREFIX + "b"}) if len(listings) >= 2 else frozenset()

    async def main():
        hints = HintReader(list_keys)
        return await asyncio.gather(hints.wait("a", 30), hints.wait("b", 30), hints.wait("c", 2.5))

    assert asyncio.run(main()) == [True, True, False]
    assert len(listings) <= 4  # one listing a second for all three waiters, not one each


def awaited(hints, kie_task_id, deadline):
    """A task's wait for its callback, awaited from the start, with a 60 s safety net."""
    return CallbackWait(hints, JobRef(kie_task_id, deadline), 60, "http://airflow", None, awaited=True)


def test_after_its_hint_a_task_is_polled_at_kies_pace_and_a_failing_listing_only_delays():
    def failing():
        raise RuntimeError("no supervisor")

    async def main():
        hints = HintReader(failing)
        assert await hints.wait("a", 1.5) is False  # the safety-net poll happens, nothing raised
        wait = awaited(HintReader(lambda: frozenset({HINT_PREFIX + "a"})), "a", time.time() + 3600)
        await asyncio.wait_for(wait.sleep(3600), 10)  # its hint ends the long safety-net sleep
        assert wait.hint_seen
        await asyncio.wait_for(wait.sleep(3600), 10)  # later sleeps are at most AFTER_HINT_INTERVAL

    asyncio.run(main())


def test_safety_net_polls_of_many_waiting_tasks_stay_within_their_share_of_kies_read_limit():
    async def main():
        hints = HintReader(lambda: frozenset())
        hints.waiting.update({str(i): set() for i in range(999)})  # 999 other tasks wait in this process
        many = awaited(hints, "a", deadline=time.time() + 3600)
        timeouts = []
        real_wait = hints.wait

        async def wait(kie_task_id, timeout):
            timeouts.append(timeout)
            return True

        hints.wait = wait
        await many.sleep(60)
        hints.wait = real_wait
        near_deadline = awaited(hints, "b", deadline=time.time() + 100)
        near_deadline.hints.wait = wait
        await near_deadline.sleep(60)
        return timeouts

    many, near_deadline = asyncio.run(main())
    assert 400 <= many <= 600  # 1,000 waiting tasks: each polled every ~500 s, 2 reads a second in all
    assert 60 <= near_deadline <= 100  # never past the deadline


def test_hints_are_listed_by_the_plugin_and_through_variables_while_it_cannot_answer(monkeypatch):
    asked = []

    class Plugin(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append((self.path, self.headers.get(HINTS_HEADER)))
            body = json.dumps({"kie_task_ids": ["a", "b"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Plugin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    lister = PluginHintLister(f"http://127.0.0.1:{server.server_port}/", "kie_default", "kie-key")
    try:
        assert lister() == {HINT_PREFIX + "a", HINT_PREFIX + "b"}
    finally:
        server.shutdown()
        server.server_close()
    assert asked == [("/kie/hints?conn_id=kie_default", hints_token("kie-key", "kie_default"))]
    assert "kie-key" not in str(asked)
    monkeypatch.setattr(hints_module, "_list_hint_keys", lambda: frozenset({HINT_PREFIX + "c"}))
    assert lister() == {HINT_PREFIX + "c"}  # the plugin is gone: Airflow's Variables answer
    assert lister() == {HINT_PREFIX + "c"} and len(asked) == 1  # and the plugin is not asked for a while
