"""The catalog as data: every model loads, validates a minimal input, refuses what its facts forbid
naming the field, converts unambiguous values, and the Seedream 4.5 entries agree with Kie's OpenAPI."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import yaml

from airflow_provider_kie import models
from airflow_provider_kie.emulator import catalog as emulator_catalog
from airflow_provider_kie.exceptions import KieInputError
from tests.catalog_cases import minimal_input, mutations
from tests.support import REPOSITORY

ALL = models.names()
OPENAPI = REPOSITORY / "airflow_provider_kie" / "emulator" / "openapi"


def test_the_catalog_ships_every_model_once_under_its_own_id():
    assert len(ALL) >= 150 and len(set(ALL)) == len(ALL)
    for name in ALL:
        entry = models.entry(name)
        assert entry is not None and entry.name == name and entry.kind in ("image", "video", "audio")
        assert entry.confidence in ("doc", "third-party") and entry.sources
    about = json.loads((models.CATALOG_DIR / "_sources.json").read_text())
    cited = {s for name in ALL for s in models.catalog_model(name).sources}
    assert cited <= set(about["sources"])


@pytest.mark.parametrize("name", ALL)
def test_every_model_takes_a_minimal_input_and_refuses_each_forbidden_value_by_field(name):
    """The provider's validator and the emulator's own check (the catalog as JSON Schema) agree."""
    model = models.catalog_model(name)
    accepted = model.validate(minimal_input(model))
    assert {f.name for f in model.fields if f.required} <= set(accepted)
    assert emulator_catalog.input_problem(emulator_catalog.bundled(name), accepted) is None
    for field, wrong, given in mutations(model):
        with pytest.raises(KieInputError) as info:
            model.validate(given)
        assert info.value.parameter == field, (wrong, str(info.value))
        assert name in str(info.value)
        assert f"input.{field}:" in (
            emulator_catalog.input_problem(emulator_catalog.bundled(name), given) or ""
        ), wrong


def test_unambiguous_values_are_converted_to_what_kie_wants():
    wan = models.catalog_model("wan/2-6-video-to-video")
    given = {"prompt": "a calm sea", "video_urls": ["https://a/b.mp4"], "duration": 10, "multi_shots": "true"}
    checked = wan.validate(given)
    assert checked["duration"] == "10" and checked["multi_shots"] is True
    with pytest.raises(KieInputError, match=r"'duration'.*allowed values: 5, 10"):
        wan.validate({**given, "duration": 7})
    seedance = models.catalog_model("bytedance/seedance-1.5-pro")  # a number since Kie's pages of 2026-08
    assert seedance.validate({"prompt": "a calm sea", "duration": "8"})["duration"] == 8
    numbers = next(
        (m, f) for m in map(models.catalog_model, ALL) for f in m.fields if f.type == "integer" and not f.enum
    )
    assert numbers[1].check("3") == 3 and numbers[1].check(3.0) == 3
    with pytest.raises(ValueError):
        numbers[1].check(2.5)


def test_a_third_party_model_says_so_in_its_errors():
    model, field = next(
        (m, f)
        for m in map(models.catalog_model, ALL)
        if m.confidence == "third-party"
        for f in m.fields
        if f.required and f.default is None
    )
    with pytest.raises(KieInputError, match="third-party"):
        model.validate({k: v for k, v in minimal_input(model).items() if k != field.name})


def test_unknown_fields_pass_only_where_the_catalog_lists_some_fields_only():
    complete = models.catalog_model(models.SEEDREAM_EDIT_MODEL)
    with pytest.raises(KieInputError, match=r"new_knob.*is not one of"):
        complete.validate({**minimal_input(complete), "new_knob": 1})
    partial = next(m for m in map(models.catalog_model, ALL) if not m.fields_complete)
    assert partial.validate({**minimal_input(partial), "new_knob": 1})["new_knob"] == 1


def test_a_model_outside_the_catalog_is_sent_unvalidated_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="airflow_provider_kie.models"):
        for _ in range(3):
            assert models.create_task_body("vendor/new-model-xyz", {"n": 1})["input"] == {"n": 1}
    assert sum("vendor/new-model-xyz" in r.getMessage() for r in caplog.records) == 1


def test_validate_false_sends_a_catalog_model_input_as_given():
    given = {"prompt": "p", "image_urls": ["https://a/b.png"], "aspect_ratio": "5:4"}
    with pytest.raises(KieInputError):
        models.create_task_body(models.SEEDREAM_EDIT_MODEL, given)
    assert models.create_task_body(models.SEEDREAM_EDIT_MODEL, given, validate=False)["input"] == given


@pytest.mark.parametrize(
    ("document", "model"),
    [
        ("seedream-4-5-edit.openapi.yaml", models.SEEDREAM_EDIT_MODEL),
        ("seedream-4-5-text-to-image.openapi.yaml", models.SEEDREAM_TEXT_TO_IMAGE_MODEL),
    ],
)
def test_the_seedream_entries_agree_with_kies_openapi_documents(document, model):
    spec = yaml.safe_load((OPENAPI / document).read_text())
    schemas = [
        s["properties"]["input"]
        for s in spec.get("components", {}).get("schemas", {}).values()
        if "input" in s.get("properties", {})
    ]
    if not schemas:
        body = next(iter(spec["paths"].values()))["post"]["requestBody"]["content"]["application/json"]
        schemas = [body["schema"]["properties"]["input"]]
    documented = schemas[0]
    entry = models.catalog_model(model)
    assert [f.name for f in entry.fields] == list(documented["properties"])
    assert {f.name for f in entry.fields if f.required} == set(documented.get("required", []))
    for f in entry.fields:
        prop = documented["properties"][f.name]
        assert f.enum == (tuple(prop["enum"]) if "enum" in prop else None), f.name
        assert f.max_length == prop.get("maxLength") and f.max_items == prop.get("maxItems"), f.name
        assert f.default == prop.get("default"), f.name


def test_importing_the_operators_reads_only_their_own_entries_and_no_page():
    code = (
        "import json, pathlib\n"
        "read = []\n"
        "original = pathlib.Path.read_text\n"
        "def spy(self, *a, **k):\n"
        "    read.append(self.name) if self.suffix == '.json' else None\n"
        "    return original(self, *a, **k)\n"
        "pathlib.Path.read_text = spy\n"
        "import sys, airflow_provider_kie.operators.seedream, airflow_provider_kie.operators.batch\n"
        "assert 'airflow_provider_kie.pages' not in sys.modules, 'no page read at parse'\n"
        "print(json.dumps(sorted(n for n in read if '__' in n)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == [
        "seedream__4.5-edit.json",
        "seedream__4.5-text-to-image.json",
    ]


def typed_operators():
    from airflow_provider_kie.operators import market, seedream

    found = [getattr(module, name) for module in (market, seedream) for name in dir(module)]
    return [c for c in found if isinstance(c, type) and vars(c).get("kie_model") is not None]


@pytest.mark.parametrize("operator", typed_operators(), ids=lambda c: c.__name__)
def test_typed_operators_take_fields_and_docs_from_their_catalog_entry(operator):
    model = operator.kie_model
    assert model is models.entry(model.name)
    assert set(model.template_fields) <= set(operator.template_fields)
    assert all(f":param {f.name}:" in operator.__doc__ for f in model.fields)
    task = operator(task_id="t", **minimal_input(model))
    (prepared,) = task.prepared()
    assert prepared.job.body["input"] == model.validate(minimal_input(model), files=True)
    for field, _, given in mutations(model)[:1] if "__init__" not in vars(operator) else []:
        with pytest.raises(KieInputError, match=field):
            operator(task_id="t", **given).prepared()


def test_the_typed_operators_cover_the_families_the_docs_promise():
    names = {c.kie_model.name for c in typed_operators()}
    assert {
        "kling-2.6/image-to-video",
        "kling-2.6/text-to-video",
        "kling-3.0/video",
        "bytedance/seedance-2",
    } <= names
    assert {
        "nano-banana-2",
        "nano-banana-pro",
        "seedream/5-lite-text-to-image",
        "topaz/image-upscale",
    } <= names
    assert "elevenlabs/text-to-speech-multilingual-v2" in names
