"""KieHook and KieAsyncHook against the emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import logging
import time

import pytest
import requests

from airflow_provider_kie import models
from airflow_provider_kie.api import TaskState
from airflow_provider_kie.connection import connection_json
from airflow_provider_kie.emulator.images import result_png
from airflow_provider_kie.exceptions import (
    KieAmbiguousCreateError,
    KieAuthError,
    KieConnectionError,
    KieInputError,
    KieInsufficientCreditsError,
    KieMaintenanceError,
    KieNotFoundError,
    KieRateLimitError,
    KieServerError,
    KieSubKeyLimitError,
    KieValidationError,
)
from airflow_provider_kie.hooks.kie import USER_AGENT, KieAsyncHook, KieHook
from airflow_provider_kie.hooks.sessions import close_shared_async_sessions
from airflow_provider_kie.testing import EMULATOR_API_KEY, free_port
from tests.support import EDIT_INPUT


def wait_done(hook: KieHook, task_id: str, limit: float = 10.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        task = hook.get_task(task_id)
        if task.is_terminal:
            return task
        time.sleep(0.05)
    raise AssertionError("task did not finish")


class TestSyncHook:
    def test_create_and_wait_for_success(self, hook, kie_emulator):
        task_id = hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        task = wait_done(hook, task_id)
        assert task.state is TaskState.SUCCESS and task.model == models.SEEDREAM_EDIT_MODEL
        assert task.param["input"] == EDIT_INPUT
        image = requests.get(task.result_urls[0], timeout=5)
        assert image.headers["Content-Type"] == "image/png" and image.content.startswith(b"\x89PNG")
        assert kie_emulator.count("createTask") == 1
        assert all(r.user_agent == USER_AGENT for r in kie_emulator.requests)

    def test_recorded_states_walk_to_success(self, hook, kie_emulator):
        kie_emulator.config.update(
            {"waiting_seconds": 0.3, "queuing_seconds": 0.3, "generating_seconds": 0.3}
        )
        task_id = hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        seen = []
        while not seen or seen[-1] != "success":
            state = hook.get_task(task_id).state.value
            if not seen or seen[-1] != state:
                seen.append(state)
            time.sleep(0.02)
        assert seen == ["waiting", "queuing", "generating", "success"]

    def test_failed_task(self, hook):
        task = wait_done(
            hook, hook.create_task(models.SEEDREAM_EDIT_MODEL, {**EDIT_INPUT, "prompt": "[fail] x"})
        )
        assert task.state is TaskState.FAIL and task.fail_code == "500" and task.fail_msg
        assert task.credits_consumed == 0

    def test_record_info_is_null_right_after_creation(self, hook, kie_emulator):
        kie_emulator.config.null_seconds = 5
        task_id = hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        with pytest.raises(KieNotFoundError):
            hook.get_task(task_id)
        assert kie_emulator.count("recordInfo") == 1  # not-found-yet is the caller's to tolerate, not retried

    def test_unknown_task(self, hook):
        with pytest.raises(KieNotFoundError, match="recordInfo is null"):
            hook.get_task("0" * 32)

    @pytest.mark.parametrize(
        ("setup", "error"),
        [
            (lambda k: k.config.update({"api_keys": ["another-key"]}), KieAuthError),
            (lambda k: k.config.update({"credits": 0}), KieInsufficientCreditsError),
            (lambda k: k.add_fault("422", "createTask"), KieValidationError),
            (lambda k: k.add_fault("500", "createTask"), KieValidationError),
            (lambda k: k.add_fault("433", "createTask"), KieSubKeyLimitError),
        ],
        ids=["401", "402", "422", "500-bad-params", "433"],
    )
    def test_rejected_create_is_sent_once(self, hook, kie_emulator, setup, error):
        setup(kie_emulator)
        with pytest.raises(error):
            hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        assert kie_emulator.count("createTask") == 1

    def test_auth_error_says_what_to_do(self, hook, kie_emulator):
        kie_emulator.config.api_keys = ["another-key"]
        with pytest.raises(KieAuthError) as info:
            hook.get_credits()
        assert "kie_default" in str(info.value) and "https://kie.ai/api-key" in str(info.value)

    @pytest.mark.parametrize("fault", ["429", "429-http", "455", "503-http"])
    def test_create_retries_when_nothing_was_created(self, hook, kie_emulator, fault):
        kie_emulator.add_fault(fault, "createTask", times=2, retry_after=0.05)
        task_id = hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        assert kie_emulator.count("createTask") == 3
        assert list(kie_emulator.state.tasks) == [task_id]

    def test_retry_after_is_honoured(self, hook, kie_emulator):
        kie_emulator.add_fault("429-http", "createTask", retry_after=0.3)
        started = time.monotonic()
        hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        assert time.monotonic() - started >= 0.3

    def test_rate_limit_retried_past_max_attempts_until_its_budget(self, hook, kie_emulator, fast_retries):
        kie_emulator.add_fault("429", "createTask", times=None)
        started = time.monotonic()
        with pytest.raises(KieRateLimitError):
            hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        assert time.monotonic() - started >= fast_retries.rate_limited_budget
        assert kie_emulator.count("createTask") > fast_retries.max_attempts
        assert not kie_emulator.state.tasks

    def test_other_transient_errors_stop_at_max_attempts(self, hook, kie_emulator, fast_retries):
        kie_emulator.add_fault("455", "createTask", times=None)
        with pytest.raises(KieMaintenanceError):
            hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        assert kie_emulator.count("createTask") == fast_retries.max_attempts

    @pytest.mark.parametrize("fault", ["drop-after", "502-html", "truncated", "html-200", "empty"])
    def test_lost_create_reply_is_not_resent(self, hook, kie_emulator, fault):
        kie_emulator.add_fault(fault, "createTask")
        with pytest.raises(KieAmbiguousCreateError) as info:
            hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        assert kie_emulator.count("createTask") == 1
        assert "retry_ambiguous_create=True" in str(info.value) and "kie.ai/logs" in str(info.value)

    def test_lost_create_reply_resent_when_opted_in(self, kie_emulator, fast_retries):
        kie_emulator.add_fault("drop-after", "createTask")
        hook = KieHook(retry_policy=fast_retries, retry_ambiguous_create=True)
        task_id = hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        assert kie_emulator.count("createTask") == 2
        assert (
            task_id in kie_emulator.state.tasks and len(kie_emulator.state.tasks) == 2
        )  # paid twice, as warned

    def test_create_slower_than_timeout_is_ambiguous(self, kie_emulator, fast_retries, monkeypatch):
        conn = kie_emulator.connection_uri(EMULATOR_API_KEY).replace(
            '"extra": {', '"extra": {"timeout": 0.2, '
        )
        monkeypatch.setenv("AIRFLOW_CONN_KIE_DEFAULT", conn)
        kie_emulator.add_fault("delay", "createTask", delay=0.6)
        with pytest.raises(KieAmbiguousCreateError, match="ReadTimeout"):
            KieHook(retry_policy=fast_retries).create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        assert kie_emulator.count("createTask") == 1

    @pytest.mark.parametrize(
        "fault", ["429", "429-http", "455", "500", "500-http", "502-html", "drop", "truncated"]
    )
    def test_get_task_retries_transient_faults(self, hook, kie_emulator, fault):
        task_id = hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        kie_emulator.add_fault(fault, "recordInfo", times=2, retry_after=0.01)
        assert hook.get_task(task_id).kie_task_id == task_id
        assert kie_emulator.count("recordInfo") == 3

    def test_connection_refused_is_retried_then_reported(self, kie_emulator, fast_retries, monkeypatch):
        port = free_port()
        monkeypatch.setenv(
            "AIRFLOW_CONN_KIE_DEFAULT",
            connection_json(EMULATOR_API_KEY, f"http://127.0.0.1:{port}"),
        )
        with pytest.raises(KieConnectionError) as info:
            KieHook(retry_policy=fast_retries).create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        assert not info.value.may_have_created_task  # refused: never reached Kie, so it was safe to retry
        assert "kie_default" in str(info.value)

    def test_message_key_variant(self, hook, kie_emulator):
        kie_emulator.config.message_key = "message"
        kie_emulator.config.credits = 0
        with pytest.raises(KieInsufficientCreditsError, match="Credits insufficient"):
            hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)

    def test_credits_and_test_connection(self, hook, kie_emulator):
        kie_emulator.config.credits = 35.95
        assert str(hook.get_credits()) == "35.95"
        ok, message = hook.test_connection()
        assert ok and "35.95" in message

    def test_test_connection_reports_bad_key(self, hook, kie_emulator):
        kie_emulator.config.api_keys = ["another-key"]
        ok, message = hook.test_connection()
        assert not ok and "401" in message and EMULATOR_API_KEY not in message

    def test_download_url(self, hook):
        task = wait_done(hook, hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT))
        link = hook.get_download_url(task.result_urls[0])
        assert requests.get(link, timeout=5).content.startswith(b"\x89PNG")
        with pytest.raises(KieValidationError, match="external URL"):
            hook.get_download_url("https://example.org/a.png")

    def test_uploads(self, hook, tmp_path):
        png = result_png("upload")
        path = tmp_path / "in.png"
        path.write_bytes(png)
        urls = [
            hook.upload_file(path, upload_path="airflow/tests"),
            hook.upload_file(png, file_name="bytes.png"),
            hook.upload_file(base64_data="data:image/png;base64," + base64.b64encode(png).decode()),
        ]
        urls.append(hook.upload_file(file_url=urls[0], file_name="copy.png"))
        for url in urls:
            assert requests.get(url, timeout=5).content == png

    @pytest.mark.parametrize(
        "kwargs", [{}, {"file": b"x", "file_url": "https://a/b"}, {"file": b"x", "upload_path": "/"}]
    )
    def test_upload_rejects_bad_arguments_before_sending(self, hook, kie_emulator, kwargs):
        with pytest.raises(KieInputError):
            hook.upload_file(**kwargs)
        assert kie_emulator.count("upload") == 0

    def test_bad_input_is_rejected_before_sending(self, hook, kie_emulator):
        with pytest.raises(KieInputError, match="aspect_ratio"):
            hook.create_task(models.SEEDREAM_EDIT_MODEL, {**EDIT_INPUT, "aspect_ratio": "5:4"})
        assert kie_emulator.count("createTask") == 0

    def test_connection_without_key(self, kie_emulator, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_KIE_DEFAULT", connection_json(None, kie_emulator.url))
        with pytest.raises(KieAuthError, match="no API key"):
            KieHook().get_credits()
        assert not kie_emulator.requests

    def test_default_base_url_and_host_without_scheme(self, monkeypatch):
        from airflow_provider_kie.hooks.settings import KieConnectionSettings

        class Conn:
            conn_id, password, schema, port, extra_dejson = "c", "sk-secret-123", None, None, {}
            host = None

        assert KieConnectionSettings.from_connection(Conn).base_url == "https://api.kie.ai"
        Conn.host = "proxy.example.org"
        settings = KieConnectionSettings.from_connection(Conn)
        assert settings.base_url == "https://proxy.example.org"
        assert settings.upload_base_url == "https://kieai.redpandaai.co" and settings.timeout == 30
        assert "sk-secret-123" not in repr(settings)


class TestAsyncHook:
    async def test_create_and_wait(self, async_hook, kie_emulator):
        task_id = await async_hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        while not (task := await async_hook.get_task(task_id)).is_terminal:
            await asyncio.sleep(0.05)
        assert task.state is TaskState.SUCCESS and task.result_urls
        assert kie_emulator.count("createTask") == 1

    async def test_one_session_per_connection_and_loop(self, async_hook, kie_emulator):
        task_id = await async_hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        session = await async_hook.get_session()
        await async_hook.get_task(task_id)
        async with KieAsyncHook() as another:  # e.g. a second trigger in the same triggerer
            assert await another.get_session() is session
        assert not session.closed and await async_hook.get_session() is session
        await close_shared_async_sessions()
        assert session.closed

    def test_sync_hooks_share_one_session(self, hook):
        assert KieHook().session is hook.session

    @pytest.mark.parametrize(
        ("setup", "error"),
        [
            (lambda k: k.config.update({"api_keys": ["another-key"]}), KieAuthError),
            (lambda k: k.config.update({"credits": 0}), KieInsufficientCreditsError),
            (lambda k: k.add_fault("422", "createTask"), KieValidationError),
        ],
        ids=["401", "402", "422"],
    )
    async def test_rejected_create_is_sent_once(self, async_hook, kie_emulator, setup, error):
        setup(kie_emulator)
        with pytest.raises(error):
            await async_hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        assert kie_emulator.count("createTask") == 1

    async def test_429_retried_then_succeeds(self, async_hook, kie_emulator):
        kie_emulator.add_fault("429-http", "createTask", times=2, retry_after=0.01)
        task_id = await async_hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        assert kie_emulator.count("createTask") == 3 and list(kie_emulator.state.tasks) == [task_id]

    async def test_lost_create_reply_is_not_resent(self, async_hook, kie_emulator):
        kie_emulator.add_fault("drop-after", "createTask")
        with pytest.raises(KieAmbiguousCreateError):
            await async_hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        assert kie_emulator.count("createTask") == 1 and len(kie_emulator.state.tasks) == 1

    async def test_create_slower_than_timeout_is_ambiguous(self, kie_emulator, fast_retries, monkeypatch):
        _connection_timeout(kie_emulator, monkeypatch, 0.2)
        kie_emulator.add_fault("delay", "createTask", delay=0.6)
        async with KieAsyncHook(retry_policy=fast_retries) as hook:
            with pytest.raises(KieAmbiguousCreateError, match="TimeoutError"):
                await hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        await close_shared_async_sessions()
        assert kie_emulator.count("createTask") == 1

    @pytest.mark.fault(
        fault="the process paused (its loop stood still) while Kie answered a createTask",
        where="async hook, createTask",
        expected="the reply that came meanwhile is read: the task id kept, not a timeout",
    )
    async def test_a_reply_that_came_while_the_loop_stood_still_is_kept(
        self, kie_emulator, fast_retries, monkeypatch
    ):
        _connection_timeout(kie_emulator, monkeypatch, 1.0)
        kie_emulator.add_fault("delay", "createTask", delay=0.2)

        class PauseAsItLeaves:
            async def sending(self):
                # The loop stands still past the timeout, as in a SIGSTOPped triggerer.
                asyncio.get_running_loop().call_later(0.05, time.sleep, 2.5)

            async def not_sent(self):
                raise AssertionError("the create was answered")

        async with KieAsyncHook(retry_policy=fast_retries) as hook:
            task_id = await hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT, claim=PauseAsItLeaves())
        await close_shared_async_sessions()
        assert list(kie_emulator.state.tasks) == [task_id]

    @pytest.mark.parametrize("fault", ["455", "500-http", "502-html", "drop", "truncated", "empty"])
    async def test_get_task_retries(self, async_hook, kie_emulator, fault):
        task_id = await async_hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
        kie_emulator.add_fault(fault, "recordInfo", times=2)
        assert (await async_hook.get_task(task_id)).kie_task_id == task_id
        assert kie_emulator.count("recordInfo") == 3

    async def test_maintenance_that_does_not_end(self, async_hook, kie_emulator, fast_retries):
        kie_emulator.add_fault("455", "recordInfo", times=None)
        with pytest.raises(KieMaintenanceError):
            await async_hook.get_task("t")
        assert kie_emulator.count("recordInfo") == fast_retries.max_attempts

    async def test_gateway_error_on_get_is_retried_as_server_error(self, async_hook, kie_emulator):
        kie_emulator.add_fault("502-html", "recordInfo", times=None)
        with pytest.raises(KieServerError, match="502 Bad Gateway"):
            await async_hook.get_task("t")


def test_api_key_never_logged(kie_emulator, fast_retries, caplog):
    """Run every call, with retries and errors, at DEBUG; the key must appear in no record."""
    caplog.set_level(logging.DEBUG)
    hook = KieHook(retry_policy=fast_retries)
    kie_emulator.config.null_seconds = 0
    kie_emulator.add_fault("429-http", "createTask", retry_after=0.01)
    kie_emulator.add_fault("drop", "recordInfo")
    task_id = hook.create_task(models.SEEDREAM_EDIT_MODEL, EDIT_INPUT)
    task = wait_done(hook, task_id)
    hook.get_download_url(task.result_urls[0])
    hook.upload_file(b"\x89PNG", file_name="a.png")
    hook.test_connection()
    kie_emulator.config.api_keys = ["other"]
    errors = []
    for call in (hook.get_credits, lambda: hook.get_task(task_id)):
        try:
            call()
        except Exception as error:
            errors.append(error)

    async def run_async():
        async with KieAsyncHook(retry_policy=fast_retries) as async_hook:
            try:
                await async_hook.get_task(task_id)
            except Exception as error:
                errors.append(error)
            await close_shared_async_sessions()
            return repr(async_hook)

    async_repr = asyncio.run(run_async())
    assert len(errors) == 3
    texts = [caplog.text, repr(hook), async_repr, *map(str, errors), *map(repr, errors)]
    assert caplog.records, "expected DEBUG log records"
    for text in texts:
        assert EMULATOR_API_KEY not in text


def test_api_key_is_registered_with_the_secret_masker(kie_emulator):
    from airflow.providers.common.compat.sdk import redact

    KieHook().get_credits()
    assert EMULATOR_API_KEY not in str(redact(f"Authorization: Bearer {EMULATOR_API_KEY}"))


async def test_async_hooks_of_a_process_read_a_connection_once(kie_emulator, monkeypatch):
    from airflow_provider_kie.hooks import settings as settings_module

    reads = []
    read = settings_module.read_settings

    async def counted(conn_id):
        reads.append(conn_id)
        return await read(conn_id)

    monkeypatch.setattr(settings_module, "read_settings", counted)
    monkeypatch.setattr(settings_module, "_settings_cache", {})
    hooks = [KieAsyncHook() for _ in range(20)]
    settings = await asyncio.gather(*(hook.get_settings() for hook in hooks))  # all at once
    assert reads == ["kie_default"] and len({id(s) for s in settings}) == 1
    # A connection given in the environment is read again as soon as it changes.
    monkeypatch.setenv("AIRFLOW_CONN_KIE_DEFAULT", kie_emulator.connection_uri("another-key"))
    assert (await KieAsyncHook().get_settings()).api_key == "another-key" and len(reads) == 2


def _connection_timeout(kie_emulator, monkeypatch, seconds: float) -> None:
    conn = kie_emulator.connection_uri(EMULATOR_API_KEY).replace(
        '"extra": {', f'"extra": {{"timeout": {seconds}, '
    )
    monkeypatch.setenv("AIRFLOW_CONN_KIE_DEFAULT", conn)


async def test_kie_refusing_a_catalog_models_input_points_at_the_models_page(hook, kie_emulator):
    given = {**EDIT_INPUT, "aspect_ratio": "5:4"}  # the catalog and its page refuse it
    with pytest.raises(KieInputError, match="aspect_ratio"):
        hook.create_task(models.SEEDREAM_EDIT_MODEL, given)
    assert not kie_emulator.requests
    with pytest.raises(
        KieValidationError, match=r"in the provider's catalog.*Kie refused this input"
    ) as info:
        hook.create_task(models.SEEDREAM_EDIT_MODEL, given, validate=False)
    assert not isinstance(info.value, KieInputError)
    async_hook = KieAsyncHook()
    try:
        with pytest.raises(KieValidationError, match="Kie refused this input"):
            await async_hook.create_task(models.SEEDREAM_EDIT_MODEL, given, validate=False)
    finally:
        await async_hook.close()
