"""Bad input across the operators, the sensor and the hook: a clear error naming the parameter, and
zero requests sent (checked in the emulator's request log)."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowNotFoundException

from airflow_provider_kie import models
from airflow_provider_kie.connection import connection_json
from airflow_provider_kie.exceptions import KieInputError
from airflow_provider_kie.hooks.kie import KieHook, RetryPolicy
from airflow_provider_kie.operators.kie import KieCreateTaskOperator
from airflow_provider_kie.operators.seedream import SeedreamEditOperator, SeedreamTextToImageOperator
from airflow_provider_kie.sensors.kie import KieTaskSensor
from airflow_provider_kie.waiting import PollPolicy
from tests.catalog_cases import minimal_input
from tests.support import FakeTI

URL = "https://a/b.png"


def edit(**kwargs):
    return SeedreamEditOperator(**{"task_id": "t", "prompt": "p", "image_urls": [URL], **kwargs})


def run_edit(**kwargs):
    return edit(**kwargs).execute({"ti": FakeTI()})


def run_t2i(**kwargs):
    return SeedreamTextToImageOperator(**{"task_id": "t", "prompt": "p", **kwargs}).execute({"ti": FakeTI()})


def run_generic(**kwargs):
    return KieCreateTaskOperator(**{"task_id": "t", "model": "m/x", "input": {"a": 1}, **kwargs}).execute(
        {"ti": FakeTI()}
    )


def run_model(model, **fields):
    """The generic operator with a catalog model's minimal input, ``fields`` changed."""
    given = {**minimal_input(models.catalog_model(model)), **fields}
    return KieCreateTaskOperator(task_id="t", model=model, input=given).execute({"ti": FakeTI()})


def page_grew_but_not_enough(emulator):
    """Kie's current page takes one more aspect ratio; the value given is outside it still."""
    import copy

    from airflow_provider_kie.emulator import catalog as emulator_catalog

    page = copy.deepcopy(emulator_catalog.bundled(models.SEEDREAM_EDIT_MODEL))
    next(f for f in page["fields"] if f["name"] == "aspect_ratio")["enum"].append("5:4")
    emulator.set_page(models.SEEDREAM_EDIT_MODEL, page)
    return run_edit(aspect_ratio="7:3")


def not_json():
    return run_generic(model="m/x", input={"prompt": "p", "when": object()}, validate=False)


def local_file(name: str, head: bytes, size: int) -> str:
    path = Path(tempfile.mkdtemp(prefix="kie-bad-input-")) / name
    path.write_bytes(head + b"\0" * (size - len(head)))
    return str(path)


def run_sensor(**kwargs):
    return KieTaskSensor(**{"task_id": "w", "kie_task_id": "abc", "timeout": 60, **kwargs}).execute(
        {"ti": FakeTI()}
    )


def large_png() -> str:
    """A PNG file of 10 MB and one byte: over Seedream's limit."""
    path = Path(tempfile.mkdtemp(prefix="kie-bad-input-")) / "large.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 1024 * 1024 - 7))
    return str(path)


def missing_s3_input(s3):
    s3.bucket("kie-inputs")
    run_edit(image_urls=[f"s3://{s3.CONN_ID}@kie-no-such-bucket/in/cat.png"])


def missing_s3_output(s3):
    run_edit(output_path=f"s3://{s3.CONN_ID}@kie-no-such-bucket/out")


def no_key(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_KIE_DEFAULT", connection_json(None, emulator.url))
    run_edit()


# (case, call, parameter named, error class)
CASES = [
    ("prompt: empty string", lambda: run_edit(prompt=""), "prompt", KieInputError),
    ("prompt: only spaces", lambda: run_edit(prompt="   "), "prompt", KieInputError),
    ("prompt: 3001 characters", lambda: run_edit(prompt="x" * 3001), "prompt", KieInputError),
    ("prompt: rendered to None", lambda: run_edit(prompt=None), "prompt", KieInputError),
    ("prompt: a number", lambda: run_edit(prompt=42), "prompt", KieInputError),
    ("prompt: a list", lambda: run_t2i(prompt=["a"]), "prompt", KieInputError),
    ("image_urls: empty list (0 URLs)", lambda: run_edit(image_urls=[]), "image_urls", KieInputError),
    ("image_urls: 15 URLs", lambda: run_edit(image_urls=[URL] * 15), "image_urls", KieInputError),
    ("image_urls: rendered to None", lambda: run_edit(image_urls=None), "image_urls", KieInputError),
    ("image_urls: rendered to a dict", lambda: run_edit(image_urls={"u": URL}), "image_urls", KieInputError),
    ("image_urls: rendered to a number", lambda: run_edit(image_urls=7), "image_urls", KieInputError),
    ("image_urls: ftp scheme", lambda: run_edit(image_urls=["ftp://a/b.png"]), "image_urls", KieInputError),
    ("image_urls: file scheme", lambda: run_edit(image_urls=["file:///etc/passwd"]), "image_urls", KieInputError),
    ("image_urls: data URI", lambda: run_edit(image_urls=["data:image/png;base64,AAAA"]), "image_urls", KieInputError),
    ("image_urls: relative path", lambda: run_edit(image_urls=["/img/a.png"]), "image_urls", KieInputError),
    ("image_urls: a local file that does not exist", lambda: run_edit(image_urls=["/nonexistent/kie.png"]), "image_urls", KieInputError),
    ("image_urls: a local file that is not an image", lambda: run_edit(image_urls=["/etc/hostname"]), "image_urls", KieInputError),
    ("image_urls: a local image over 10 MB", lambda: run_edit(image_urls=[large_png()]), "image_urls", KieInputError),
    ("image_urls: an unknown scheme (sftp)", lambda: run_edit(image_urls=["sftp://host/a.png"]), "image_urls", KieInputError),
    ("image_urls: None inside the list", lambda: run_edit(image_urls=[URL, None]), "image_urls", KieInputError),
    ("image_urls: bytes", lambda: run_edit(image_urls=b"https://a/b.png"), "image_urls", KieInputError),
    ("aspect_ratio: 5:4", lambda: run_edit(aspect_ratio="5:4"), "aspect_ratio", KieInputError),
    ("aspect_ratio: auto", lambda: run_t2i(aspect_ratio="auto"), "aspect_ratio", KieInputError),
    ("quality: ultra", lambda: run_edit(quality="ultra"), "quality", KieInputError),
    ("quality: HIGH (case)", lambda: run_t2i(quality="HIGH"), "quality", KieInputError),
    ("nsfw_checker: 'maybe' string", lambda: run_edit(nsfw_checker="maybe"), "nsfw_checker", KieInputError),
    ("video duration: 7 s for kling-2.6/image-to-video (5 or 10)", lambda: run_model("kling-2.6/image-to-video", duration=7), "duration", KieInputError),
    ("reference images: 10 for bytedance/seedance-2 (at most 9)", lambda: run_model("bytedance/seedance-2", reference_image_urls=[URL] * 10), "reference_image_urls", KieInputError),
    ("a local audio file over the model's 10 MB", lambda: run_model("elevenlabs/audio-isolation", audio_url=local_file("big.mp3", b"ID3", 10 * 1024 * 1024 + 1)), "audio_url", KieInputError),
    ("a PNG given to an audio field", lambda: run_model("kling/ai-avatar-standard", audio_url=local_file("voice.mp3", b"\x89PNG\r\n\x1a\n", 64)), "audio_url", KieInputError),
    ("callback_url: relative", lambda: run_edit(callback_url="/kie/callback"), "callback_url", KieInputError),
    ("callback_url: ftp scheme", lambda: run_edit(callback_url="ftp://me/cb"), "callback_url", KieInputError),
    ("output_path: a relative folder", lambda: run_edit(output_path="results/kie"), "output_path", KieInputError),
    ("output_path: a number", lambda: run_edit(output_path=7), "output_path", KieInputError),
    ("output_path: not writable (under a file)", lambda: run_edit(output_path="/etc/hostname/kie"), "output_path", KieInputError),
    ("image_urls: in an S3 bucket that does not exist", missing_s3_input, "image_urls", KieInputError),
    ("output_path: an S3 bucket that does not exist", missing_s3_output, "output_path", KieInputError),
    ("input: not a dict", lambda: run_generic(input=["prompt"]), "input", KieInputError),
    ("input: rendered to None", lambda: run_generic(input=None), "input", KieInputError),
    ("model: empty", lambda: run_generic(model=""), "model", KieInputError),
    ("input: unknown field for seedream", lambda: run_generic(model=models.SEEDREAM_EDIT_MODEL, input={"prompt": "p", "image_urls": [URL], "n": 2}), "n", KieInputError),
    ("aspect_ratio: outside what Kie's current page grew to", page_grew_but_not_enough, "aspect_ratio", KieInputError),
    ("input: a value that is not JSON, validate=False", not_json, "when", KieInputError),
    ("poll_interval: zero", lambda: edit(poll_interval=0), "poll_interval", KieInputError),
    ("poll_interval: negative", lambda: edit(poll_interval=-3), "poll_interval", KieInputError),
    ("poll_interval: a string", lambda: edit(poll_interval="3"), "poll_interval", KieInputError),
    ("timeout: zero", lambda: edit(timeout=timedelta(0)), "timeout", KieInputError),
    ("timeout: negative", lambda: edit(timeout=timedelta(minutes=-1)), "timeout", KieInputError),
    ("timeout: a number, not a timedelta", lambda: edit(timeout=600), "timeout", KieInputError),
    ("sensor kie_task_id: rendered to None", lambda: run_sensor(kie_task_id=None), "kie_task_id", KieInputError),
    ("sensor kie_task_id: empty", lambda: run_sensor(kie_task_id=""), "kie_task_id", KieInputError),
    ("sensor kie_task_id: a list", lambda: run_sensor(kie_task_id=["abc"]), "kie_task_id", KieInputError),
    ("sensor poke_interval: zero", lambda: run_sensor(poke_interval=0), "poke_interval", KieInputError),
    ("hook: upload with no source", lambda: KieHook().upload_file(), "file", KieInputError),
    ("hook: upload with two sources", lambda: KieHook().upload_file(b"x", file_url=URL), "file", KieInputError),
    ("hook: upload path '/'", lambda: KieHook().upload_file(b"x", upload_path="/"), "upload_path", KieInputError),
    ("hook: upload of a number", lambda: KieHook().upload_file(12), "file", KieInputError),
    ("hook: retry policy with 0 attempts", lambda: RetryPolicy(max_attempts=0), "max_attempts", KieInputError),
    ("poll policy: zero interval", lambda: PollPolicy(initial_interval=0), "initial_interval", KieInputError),
    ("connection: unknown conn id", lambda: run_edit(kie_conn_id="no_such_connection"), "no_such_connection", AirflowNotFoundException),
    ("connection: no API key", no_key, "no API key", AirflowFailException),
]  # fmt: skip


@pytest.mark.parametrize(("case", "call", "parameter", "error"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(request, kie_emulator, monkeypatch, record_property, case, call, parameter, error):
    request.node.add_marker(pytest.mark.bad_input(case=case, parameter=parameter))
    wanted = call.__code__.co_varnames[: call.__code__.co_argcount]
    needs = {"emulator": lambda: kie_emulator, "monkeypatch": lambda: monkeypatch}
    needs["s3"] = lambda: request.getfixturevalue("s3_server")  # started only for the cases that use it
    try:
        with pytest.raises(error) as info:
            call(*(needs[name]() for name in wanted))
        assert parameter in str(info.value)
    finally:
        record_property("requests", len(kie_emulator.requests))
    assert not kie_emulator.requests
