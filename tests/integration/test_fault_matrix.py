"""The fault matrix: every fault ends in success within the deadline or in a clear failure, never a
hang, with exactly one Kie task per logical task. Each case runs in the worker and deferred (the
trigger run in-process with a task instance and XCom, as the triggerer runs it: on Airflow 3 it creates
the Kie task and ends the Airflow task on success; execute_complete runs for the other outcomes)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from airflow.triggers.base import TaskSuccessEvent

from airflow_provider_kie.connection import connection_json
from airflow_provider_kie.exceptions import KieConnectionError, KieTaskFailedError
from airflow_provider_kie.hooks import kie as kie_hooks
from airflow_provider_kie.hooks.kie import RetryPolicy
from airflow_provider_kie.operators.seedream import SeedreamEditOperator
from airflow_provider_kie.testing import EMULATOR_API_KEY, free_port
from tests.support import FakeTI

SUCCESS = "success"


def fault(kind, endpoint, times=1, **kwargs):
    return lambda emulator: emulator.add_fault(kind, endpoint, times=times, **kwargs)


def setting(**changes):
    return lambda emulator: emulator.config.update(changes)


def closed_port(emulator, monkeypatch):
    port = free_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_KIE_DEFAULT",
        connection_json(EMULATOR_API_KEY, f"http://127.0.0.1:{port}"),
    )


def slow_replies(emulator, monkeypatch):
    conn = json.loads(emulator.connection_uri(EMULATOR_API_KEY))
    conn["extra"]["timeout"] = 0.3
    monkeypatch.setenv("AIRFLOW_CONN_KIE_DEFAULT", json.dumps(conn))
    emulator.add_fault("delay", "recordInfo", times=2, delay=0.6)


# (id, fault, where injected, setup, expected outcome, Kie tasks created)
CASES = [
    ("429-body-storm", "429 storm, body code on HTTP 200", "createTask x3", fault("429", "createTask", 3), SUCCESS, 1),
    ("429-http-storm", "429 storm, HTTP 429 + Retry-After", "createTask x3", fault("429-http", "createTask", 3, retry_after=0.05), SUCCESS, 1),
    ("429-poll-storm", "429 storm on polls", "recordInfo x6", fault("429", "recordInfo", 6), SUCCESS, 1),
    ("433", "433 sub-key limit", "createTask", fault("433", "createTask"), AirflowFailException, 0),
    ("455-create", "455 maintenance window", "createTask x3", fault("455", "createTask", 3), SUCCESS, 1),
    ("455-poll", "455 maintenance window", "recordInfo x8", fault("455", "recordInfo", 8), SUCCESS, 1),
    ("500-burst", "500 burst (HTTP 500)", "recordInfo x4", fault("500-http", "recordInfo", 4), SUCCESS, 1),
    ("502-burst", "502 HTML page burst", "recordInfo x4", fault("502-html", "recordInfo", 4), SUCCESS, 1),
    ("503-burst", "503 burst, empty body", "createTask x2 + recordInfo x4", lambda e: (fault("503-http", "createTask", 2)(e), fault("503-http", "recordInfo", 4)(e)), SUCCESS, 1),
    ("refused", "connection refused", "every request", closed_port, KieConnectionError, 0),
    ("reset", "connection reset", "recordInfo x3", fault("drop", "recordInfo", 3), SUCCESS, 1),
    ("slow", "reply slower than the timeout", "recordInfo x2", slow_replies, SUCCESS, 1),
    ("truncated", "truncated body", "recordInfo x3", fault("truncated", "recordInfo", 3), SUCCESS, 1),
    ("html-200", "HTML page on HTTP 200", "recordInfo x3", fault("html-200", "recordInfo", 3), SUCCESS, 1),
    ("empty", "empty body", "recordInfo x3", fault("empty", "recordInfo", 3), SUCCESS, 1),
    ("missing-fields", "record without optional fields", "recordInfo x3", fault("missing-fields", "recordInfo", 3), SUCCESS, 1),
    ("result-object", "resultJson as an object", "recordInfo (all)", fault("result-object", "recordInfo", None), SUCCESS, 1),
    ("result-invalid", "resultJson not JSON", "recordInfo (all)", fault("result-invalid", "recordInfo", None), AirflowFailException, 1),
    ("result-no-urls", "resultJson without resultUrls", "recordInfo (all)", fault("result-no-urls", "recordInfo", None), AirflowFailException, 1),
    ("unknown-state", "unknown state value", "recordInfo x3", fault("unknown-state", "recordInfo", 3), SUCCESS, 1),
    ("null-forever", "'recordInfo is null' that never ends", "recordInfo (all)", fault("not-found", "recordInfo", None), AirflowFailException, 1),
    ("generation-fails", "task ends in state fail", "the task", setting(fail_marker="Make it"), KieTaskFailedError, 1),
    ("lost-create-reply", "lost createTask reply (task created)", "createTask", fault("drop-after", "createTask"), AirflowFailException, 1),
    ("lost-create-timeout", "createTask slower than the timeout (task created)", "createTask", lambda e, m: (slow_replies(e, m), fault("delay", "createTask", delay=0.6)(e)), AirflowFailException, 1),
]  # fmt: skip


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(
        kie_hooks, "DEFAULT_RETRY_POLICY", RetryPolicy(max_attempts=5, base_delay=0.02, max_delay=0.1)
    )


def run(mode, operator, triggerer_xcom):
    context = {"ti": FakeTI()}
    if mode == "worker":
        return operator.execute(context)
    try:
        operator.execute(context)
    except TaskDeferred as deferred:
        event = triggerer_xcom.run_in_triggerer(deferred.trigger)
        if isinstance(event, TaskSuccessEvent):  # ended in the triggerer, as end_from_trigger does
            return triggerer_xcom["return_value"]
        return getattr(operator, deferred.method_name)(context, event.payload)
    raise AssertionError("did not defer")


@pytest.mark.parametrize("mode", ["worker", "deferred"])
@pytest.mark.parametrize(
    ("case", "description", "where", "setup", "expected", "tasks"), CASES, ids=[c[0] for c in CASES]
)
def test_fault(
    request,
    kie_emulator,
    monkeypatch,
    triggerer_xcom,
    mode,
    case,
    description,
    where,
    setup,
    expected,
    tasks,
    record_property,
):
    request.node.add_marker(
        pytest.mark.fault(
            fault=description,
            where=f"{where} ({mode})",
            expected="success" if expected is SUCCESS else f"clear failure: {expected.__name__}",
        )
    )
    kie_emulator.config.update({"waiting_seconds": 0.1, "generating_seconds": 0.2, "null_seconds": 0.1})
    if setup.__code__.co_argcount == 2:
        setup(kie_emulator, monkeypatch)
    else:
        setup(kie_emulator)
    operator = SeedreamEditOperator(
        task_id="edit",
        prompt="Make it water",
        image_urls=["https://a/b.png"],
        poll_interval=0.05,
        timeout=timedelta(seconds=3),
        deferrable=mode == "deferred",
    )
    try:
        if expected is SUCCESS:
            urls = run(mode, operator, triggerer_xcom)
            assert urls and urls[0].endswith(".png")
        else:
            with pytest.raises(expected) as info:
                run(mode, operator, triggerer_xcom)
            message = str(info.value)
            assert message and "Traceback" not in message
            if case.startswith("lost-create"):
                assert "may have reached Kie" in message and "retry_ambiguous_create" in message
    finally:
        kie_emulator.wait_until_idle()
        record_property("create_requests", kie_emulator.count("createTask"))
        record_property("tasks_created", len(kie_emulator.state.tasks))
    assert len(kie_emulator.state.tasks) == tasks


@pytest.mark.fault(
    fault="lost createTask reply, opted in",
    where="createTask",
    expected="resent: success, 2 tasks (as documented)",
)
def test_lost_create_reply_resent_when_opted_in(kie_emulator, monkeypatch, record_property):
    kie_emulator.config.update({"waiting_seconds": 0.1, "generating_seconds": 0.2, "null_seconds": 0.1})
    kie_emulator.add_fault("drop-after", "createTask")
    operator = SeedreamEditOperator(
        task_id="edit",
        prompt="p",
        image_urls="https://a/b.png",
        poll_interval=0.05,
        retry_ambiguous_create=True,
    )
    assert operator.execute({"ti": FakeTI()})
    record_property("create_requests", kie_emulator.count("createTask"))
    record_property("tasks_created", len(kie_emulator.state.tasks))
    assert kie_emulator.count("createTask") == 2 and len(kie_emulator.state.tasks) == 2
