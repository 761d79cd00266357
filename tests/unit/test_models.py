"""The model catalog: createTask bodies, Seedream validation, and what a typed operator takes from it."""

from __future__ import annotations

import pytest

from airflow_provider_kie import models
from airflow_provider_kie.exceptions import KieInputError
from airflow_provider_kie.operators.seedream import SeedreamEditOperator, SeedreamTextToImageOperator

EDIT = {"prompt": "p", "image_urls": ["https://a/b.png"], "aspect_ratio": "1:1", "quality": "basic"}


def edit_input(**kwargs):
    return models.catalog_model(models.SEEDREAM_EDIT_MODEL).validate(
        {"prompt": "p", "image_urls": ["https://a/b.png"], **kwargs}
    )


def test_create_body():
    body = models.create_task_body(models.SEEDREAM_EDIT_MODEL, EDIT, "https://me/cb")
    assert body == {"model": "seedream/4.5-edit", "callBackUrl": "https://me/cb", "input": EDIT}


def test_defaults_filled_and_optional_flag_omitted():
    assert edit_input() == {**EDIT}
    assert edit_input(nsfw_checker=None) == {**EDIT}
    assert edit_input(aspect_ratio=None, quality=None) == {**EDIT}  # None: not given
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


def test_catalog_entries_are_found_by_model_id_and_mark_their_files():
    edit = models.catalog_model(models.SEEDREAM_EDIT_MODEL)
    assert models.entry(models.SEEDREAM_EDIT_MODEL) is edit
    assert [f.name for f in edit.file_fields] == ["image_urls"]
    assert not models.catalog_model(models.SEEDREAM_TEXT_TO_IMAGE_MODEL).file_fields
    assert models.entry("other/model") is None and models.entry("../models") is None


@pytest.mark.parametrize(
    ("operator", "model"),
    [
        (SeedreamEditOperator, models.SEEDREAM_EDIT_MODEL),
        (SeedreamTextToImageOperator, models.SEEDREAM_TEXT_TO_IMAGE_MODEL),
    ],
)
def test_typed_operators_take_their_fields_from_the_catalog(operator, model):
    assert operator.kie_model is models.entry(model)
    assert tuple(operator.template_fields) == (
        *operator.kie_model.template_fields,
        "callback_url",
        "output_path",
    )
