"""The model catalog: createTask bodies, Seedream validation, and what a typed operator takes from it."""

from __future__ import annotations

import pytest

from airflow_provider_kie import models
from airflow_provider_kie.exceptions import KieInputError
from airflow_provider_kie.operators.seedream import SeedreamEditOperator, SeedreamTextToImageOperator

EDIT = {"prompt": "p", "image_urls": ["https://a/b.png"], "aspect_ratio": "1:1", "quality": "basic"}


def edit_input(**kwargs):
    return models.SEEDREAM_EDIT.validate({"prompt": "p", "image_urls": ["https://a/b.png"], **kwargs})


def test_create_body():
    body = models.create_task_body(models.SEEDREAM_EDIT_MODEL, EDIT, "https://me/cb")
    assert body == {"model": "seedream/4.5-edit", "callBackUrl": "https://me/cb", "input": EDIT}


def test_defaults_filled_and_optional_flag_omitted():
    assert edit_input() == {**EDIT}
    assert edit_input(nsfw_checker=None) == {**EDIT}
    assert edit_input(nsfw_checker=False)["nsfw_checker"] is False


def test_unknown_model_passes_through_and_no_callback_key_when_absent():
    assert models.create_task_body("other/model", {"x": 1}) == {"model": "other/model", "input": {"x": 1}}


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 3001}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"image_urls": []}, "image_urls"),
        ({"image_urls": ["https://a/b.png"] * 15}, "image_urls"),
        ({"image_urls": ["ftp://a/b.png"]}, "image_urls"),
        ({"image_urls": [3]}, "image_urls"),
        ({"image_urls": None}, "image_urls"),
        ({"aspect_ratio": "auto"}, "aspect_ratio"),
        ({"aspect_ratio": None}, "aspect_ratio"),
        ({"quality": "ultra"}, "quality"),
        ({"nsfw_checker": "yes"}, "nsfw_checker"),
    ],
)
def test_bad_seedream_input_names_the_parameter(kwargs, parameter):
    with pytest.raises(KieInputError) as info:
        edit_input(**kwargs)
    assert info.value.parameter == parameter and parameter in str(info.value)


def test_error_lists_allowed_values():
    with pytest.raises(KieInputError, match="1:1, 4:3, 3:4, 16:9, 9:16, 2:3, 3:2, 21:9"):
        edit_input(aspect_ratio="5:4")


def test_single_url_string_and_limits():
    assert edit_input(prompt="x" * 3000, image_urls="https://a/b.png")["image_urls"] == ["https://a/b.png"]
    assert len(edit_input(image_urls=["https://a/b"] * 14)["image_urls"]) == 14


def test_text_to_image_rejects_image_urls():
    with pytest.raises(KieInputError, match="image_urls"):
        models.validate_input(
            models.SEEDREAM_TEXT_TO_IMAGE_MODEL, {"prompt": "p", "image_urls": ["https://a"]}
        )


def test_unknown_field_for_known_model():
    with pytest.raises(KieInputError, match="n_images"):
        models.validate_input(models.SEEDREAM_EDIT_MODEL, {**EDIT, "n_images": 2})


@pytest.mark.parametrize("url", ["/relative", "mailto:a@b", "not a url", 5])
def test_callback_url_must_be_absolute_http(url):
    with pytest.raises(KieInputError, match="callback_url"):
        models.create_task_body("m", {}, url)


def test_catalog_entries_are_keyed_by_name_and_mark_their_files():
    assert models.CATALOG[models.SEEDREAM_EDIT_MODEL] is models.SEEDREAM_EDIT
    assert [f.name for f in models.SEEDREAM_EDIT.fields if f.is_file] == ["image_urls"]
    assert not any(f.is_file for f in models.SEEDREAM_TEXT_TO_IMAGE.fields)


@pytest.mark.parametrize(
    ("operator", "model"),
    [
        (SeedreamEditOperator, models.SEEDREAM_EDIT),
        (SeedreamTextToImageOperator, models.SEEDREAM_TEXT_TO_IMAGE),
    ],
)
def test_typed_operators_take_their_fields_from_the_catalog(operator, model):
    assert operator.kie_model is model
    assert tuple(operator.template_fields) == (*model.template_fields, "callback_url", "output_path")
    assert "nsfw_checker" not in operator.template_fields
