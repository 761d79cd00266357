"""Kie's current pages decide: the emulator serves pages that differ from the bundled catalog (a key
added, an enum grown, a limit widened, a type changed, a model added or removed), and the provider sends
what the page takes, refuses with no request what it refuses, warns and sends when no page can be read,
learns what Kie accepted, and refreshes its catalog from the pages without a release."""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys

import pytest

from airflow_provider_kie import models, pages
from airflow_provider_kie.emulator import catalog as emulator_catalog
from airflow_provider_kie.exceptions import KieInputError, KieValidationError
from airflow_provider_kie.operators.batch import KieBatchOperator
from airflow_provider_kie.testing import EMULATOR_API_KEY, free_port
from tests.integration.test_batch import context, run_to_end
from tests.support import REPOSITORY

pytestmark = pytest.mark.usefixtures("fast_kie")

EDIT = models.SEEDREAM_EDIT_MODEL
IMAGE = "https://example.org/in.png"


def page_of(model: str, change) -> dict:
    """The bundled facts of ``model`` with ``change`` applied: what Kie's page says now."""
    entry = copy.deepcopy(emulator_catalog.bundled(model))
    change(entry)
    return entry


def field(entry: dict, name: str) -> dict:
    return next(f for f in entry["fields"] if f["name"] == name)


def edit_input(**changes) -> dict:
    return {"prompt": "Make it glass", "image_urls": [IMAGE], **changes}


def sent_inputs(kie_emulator) -> list[dict]:
    return [r.body["input"] for r in kie_emulator.requests if r.endpoint == "createTask"]


@pytest.fixture
def unreachable_docs(monkeypatch):
    """Kie's docs host cannot be reached (nothing listens on the port)."""
    monkeypatch.setenv(pages.DOCS_URL_ENV, f"http://127.0.0.1:{free_port()}")


# --------------------------------------------------------------------------- the page decides


@pytest.mark.parametrize(
    ("what", "change", "given"),
    [
        (
            "a key added",
            lambda e: e["fields"].append({"name": "style_strength", "type": "number", "min": 0, "max": 1}),
            {"style_strength": 0.4},
        ),
        ("an enum grown", lambda e: field(e, "aspect_ratio")["enum"].append("5:4"), {"aspect_ratio": "5:4"}),
        ("a limit widened", lambda e: field(e, "prompt").update(max_length=6000), {"prompt": "p" * 5000}),
        (
            "a list widened",
            lambda e: field(e, "image_urls").update(max_items=20),
            {"image_urls": [IMAGE] * 16},
        ),
        (
            "a type changed",
            lambda e: field(e, "quality").update(type="integer", enum=None, min=1, max=3),
            {"quality": 2},
        ),
        ("a required key dropped", lambda e: field(e, "prompt").update(required=False), {"prompt": None}),
    ],
)
def test_what_the_current_page_takes_is_sent_and_succeeds(kie_emulator, hook, what, change, given):
    kie_emulator.set_page(EDIT, page_of(EDIT, change))
    model_input = {k: v for k, v in edit_input(**given).items() if v is not None}
    with pytest.raises(KieInputError):  # the bundled entry alone refuses it
        models.validate_input(EDIT, model_input, validate="strict")
    kie_task_id = hook.create_task(EDIT, model_input)
    assert hook.get_task(kie_task_id).kie_task_id == kie_task_id
    (sent,) = sent_inputs(kie_emulator)
    assert {k: sent.get(k) for k in given if given[k] is not None} == {
        k: v for k, v in given.items() if v is not None
    }


def test_what_the_current_page_refuses_too_is_refused_with_no_request(kie_emulator, hook):
    kie_emulator.set_page(EDIT, page_of(EDIT, lambda e: field(e, "aspect_ratio")["enum"].append("5:4")))
    with pytest.raises(KieInputError) as refused:
        hook.create_task(EDIT, edit_input(aspect_ratio="7:3"))
    message = str(refused.value)
    assert refused.value.parameter == "aspect_ratio" and "5:4" in message  # the page's values
    assert f"{kie_emulator.url}/market/seedream/4-5-edit.md" in message  # and the page
    assert kie_emulator.count("createTask") == 0


def test_strict_refuses_on_the_bundled_entry_alone(kie_emulator, hook):
    kie_emulator.set_page(EDIT, page_of(EDIT, lambda e: field(e, "aspect_ratio")["enum"].append("5:4")))
    with pytest.raises(KieInputError, match="strict"):
        hook.create_task(EDIT, edit_input(aspect_ratio="5:4"), validate="strict")
    assert kie_emulator.count("createTask") == 0 and not kie_emulator.page_requests
    hook.create_task(EDIT, edit_input(aspect_ratio="5:4"), validate=False)  # as given: the page takes it
    assert kie_emulator.count("createTask") == 1


def test_the_docs_host_gets_the_page_url_only_once_a_day(kie_emulator, hook):
    kie_emulator.set_page(EDIT, page_of(EDIT, lambda e: field(e, "aspect_ratio")["enum"].append("5:4")))
    hook.create_task(EDIT, edit_input(aspect_ratio="5:4", prompt="a secret prompt"))
    hook.create_task(EDIT, edit_input(aspect_ratio="5:4", prompt="another"))
    (read,) = kie_emulator.page_requests  # read once, then from the process's cache
    assert read.path == "/market/seedream/4-5-edit.md" and read.query == {} and read.body is None
    assert read.key_sha256 is None  # no key
    # Another process on the machine reads it from the disk cache, not from the docs host.
    code = (
        "from airflow_provider_kie import models; "
        "print(models.validate_input('seedream/4.5-edit', "
        f"{{'prompt': 'p', 'image_urls': [{IMAGE!r}], 'aspect_ratio': '5:4'}})['aspect_ratio'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "5:4" and len(kie_emulator.page_requests) == 1


def test_no_page_is_read_for_input_the_catalog_takes(kie_emulator, hook):
    hook.create_task(EDIT, edit_input(aspect_ratio="16:9"))
    assert not kie_emulator.page_requests


# --------------------------------------------------------------------------- no page to read


def test_an_unreachable_docs_host_sends_drifted_values_with_one_warning_each(
    kie_emulator, hook, unreachable_docs, caplog
):
    kie_emulator.set_page(EDIT, page_of(EDIT, lambda e: field(e, "aspect_ratio")["enum"].append("5:4")))
    with caplog.at_level(logging.WARNING, logger="airflow_provider_kie.models"):
        for _ in range(3):
            hook.create_task(EDIT, edit_input(aspect_ratio="5:4"))
    warnings = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(warnings) == 1
    assert "input.aspect_ratio" in warnings[0] and models.catalog_date() in warnings[0]
    assert kie_emulator.count("createTask") == 3 and all(
        s["aspect_ratio"] == "5:4" for s in sent_inputs(kie_emulator)
    )


def test_a_value_kie_accepted_counts_as_allowed_from_then_on(kie_emulator, hook, unreachable_docs):
    kie_emulator.set_page(EDIT, page_of(EDIT, lambda e: field(e, "aspect_ratio")["enum"].append("5:4")))
    assert models.check_input(EDIT, edit_input(aspect_ratio="5:4")).unconfirmed == ('aspect_ratio="5:4"',)
    hook.create_task(EDIT, edit_input(aspect_ratio="5:4"))
    assert models.check_input(EDIT, edit_input(aspect_ratio="5:4")).unconfirmed == ()
    pages.forget()  # a new process: read from the cache folder
    assert models.check_input(EDIT, edit_input(aspect_ratio="5:4")).unconfirmed == ()
    assert models.check_input(EDIT, edit_input(aspect_ratio="7:3")).unconfirmed == ('aspect_ratio="7:3"',)


def test_a_page_changed_beyond_parsing_is_a_page_not_read(kie_emulator, hook):
    kie_emulator.add_fault("html-200", "docs")
    kie_emulator.set_page(EDIT, page_of(EDIT, lambda e: field(e, "aspect_ratio")["enum"].append("5:4")))
    hook.create_task(EDIT, edit_input(aspect_ratio="5:4"))
    assert kie_emulator.count("createTask") == 1


def test_a_batch_sharing_a_value_kie_refuses_makes_one_create_for_it(kie_emulator, unreachable_docs):
    """1,000 items send a value the catalog refuses and no page confirms; Kie refuses it."""
    items = [edit_input(prompt=f"take {n}", aspect_ratio="7:3") for n in range(1000)]
    operator = KieBatchOperator(
        task_id="edits", model=EDIT, inputs=items, on_item_failure="report", poll_interval=0.05
    )
    results = run_to_end(operator, context())
    assert kie_emulator.count("createTask") == 1
    assert len(results) == 1000 and all(r["status"] == "error" for r in results)
    assert all("aspect_ratio" in r["error"] for r in results)
    assert sum("was not sent" in r["error"] for r in results) == 999


def test_a_batch_sharing_a_value_kie_takes_sends_every_item(kie_emulator, unreachable_docs):
    kie_emulator.set_page(EDIT, page_of(EDIT, lambda e: field(e, "aspect_ratio")["enum"].append("5:4")))
    items = [edit_input(prompt=f"take {n}", aspect_ratio="5:4") for n in range(12)]
    results = run_to_end(
        KieBatchOperator(task_id="edits", model=EDIT, inputs=items, poll_interval=0.05), context()
    )
    assert kie_emulator.count("createTask") == 12 and all(r["status"] == "success" for r in results)


# --------------------------------------------------------------------------- the refresh


def refresh(kie_emulator, out, *extra) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_provider_kie.catalog",
            "refresh",
            "--docs",
            kie_emulator.url,
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_refresh_of_unchanged_pages_changes_nothing(kie_emulator, tmp_path):
    printed = refresh(kie_emulator, tmp_path)
    gone = [name for name in models.names() if models.catalog_model(name).gone]
    documented = len(models.names()) - len(gone)
    assert f"Read {documented} model pages" in printed
    assert f"0 added, 0 changed, {documented} unchanged, {len(gone)} gone" in printed


def test_a_model_added_to_the_pages_runs_validated_after_a_refresh(kie_emulator, hook, tmp_path, monkeypatch):
    new = page_of(
        "seedream/4.5-text-to-image",
        lambda e: e.update(
            model="seedream/6-text-to-image", doc_url="https://docs.kie.ai/market/seedream/6-text-to-image.md"
        ),
    )
    kie_emulator.set_page("seedream/6-text-to-image", new)
    printed = refresh(kie_emulator, tmp_path)
    assert "added   seedream/6-text-to-image" in printed
    monkeypatch.setenv(models.CATALOG_DIR_ENV, str(tmp_path))
    assert models.entry("seedream/6-text-to-image") is not None
    with pytest.raises(KieInputError, match="aspect_ratio"):
        hook.create_task("seedream/6-text-to-image", {"prompt": "a bird", "aspect_ratio": "7:3"})
    assert kie_emulator.count("createTask") == 0
    hook.create_task("seedream/6-text-to-image", {"prompt": "a bird"})
    (sent,) = sent_inputs(kie_emulator)
    assert sent["aspect_ratio"] == "1:1"  # the page's default, filled in


def test_a_refresh_writes_what_changed_and_the_process_reads_it_over_the_bundled(
    kie_emulator, tmp_path, monkeypatch
):
    kie_emulator.set_page(EDIT, page_of(EDIT, lambda e: field(e, "aspect_ratio")["enum"].append("5:4")))
    printed = refresh(kie_emulator, tmp_path)
    assert "changed seedream/4.5-edit: aspect_ratio" in printed
    written = json.loads((tmp_path / "seedream__4.5-edit.json").read_text())
    assert written["doc_url"] == f"{kie_emulator.url}/market/seedream/4-5-edit.md" and written["read_at"]
    monkeypatch.setenv(models.CATALOG_DIR_ENV, str(tmp_path))
    assert (
        models.validate_input(EDIT, edit_input(aspect_ratio="5:4"), validate="strict")["aspect_ratio"]
        == "5:4"
    )


def test_a_model_gone_from_the_pages_is_marked_and_warns_with_its_last_day(
    kie_emulator, hook, tmp_path, monkeypatch, caplog
):
    kie_emulator.set_page("google/imagen4-ultra", None)
    printed = refresh(kie_emulator, tmp_path)
    assert "gone    google/imagen4-ultra" in printed
    monkeypatch.setenv(models.CATALOG_DIR_ENV, str(tmp_path))
    gone = models.entry("google/imagen4-ultra")
    assert gone is not None and gone.gone and gone.last_seen == models.catalog_date()
    with caplog.at_level(logging.WARNING, logger="airflow_provider_kie.models"):
        hook.create_task("google/imagen4-ultra", {"prompt": "a bird"})
    assert any(
        "gone from Kie's pages" in r.getMessage() and gone.last_seen in r.getMessage() for r in caplog.records
    )


def test_a_refresh_with_no_docs_host_says_so(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_kie.catalog", "refresh", "--docs", f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPOSITORY)}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and "Cannot read Kie's docs index" in done.stderr
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- the emulator follows its pages


def test_the_emulators_own_check_follows_the_pages_it_serves(kie_emulator, hook):
    with pytest.raises(KieValidationError):  # Kie refuses what its page does not list
        hook.create_task(EDIT, edit_input(aspect_ratio="5:4"), validate=False)
    kie_emulator.set_page(EDIT, page_of(EDIT, lambda e: field(e, "aspect_ratio")["enum"].append("5:4")))
    hook.create_task(EDIT, edit_input(aspect_ratio="5:4"), validate=False)
    assert kie_emulator.count("createTask") == 2 and len(kie_emulator.state.tasks) == 1


def test_a_key_is_never_sent_to_the_docs_host(kie_emulator, hook):
    kie_emulator.set_page(EDIT, page_of(EDIT, lambda e: field(e, "aspect_ratio")["enum"].append("5:4")))
    hook.create_task(EDIT, edit_input(aspect_ratio="5:4"))
    assert kie_emulator.page_requests and all(r.key_sha256 is None for r in kie_emulator.page_requests)
    assert EMULATOR_API_KEY not in json.dumps([r.to_dict() for r in kie_emulator.page_requests])
