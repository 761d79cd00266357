"""Kie's pages parsed: Kie's own OpenAPI fragments (vendored) read back as the catalog's entries, and
the shapes pages take (oneOf alternatives, file fields in prose, reference forms, guides)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_kie import models, pages
from airflow_provider_kie.exceptions import KieInputError
from tests.support import REPOSITORY

OPENAPI = REPOSITORY / "airflow_provider_kie" / "emulator" / "openapi"


def as_page(fragment: str, title: str = "Seedream4.5 - Edit") -> str:
    """A fragment in the shape of Kie's ``.md`` pages (docs.kie.ai/market/...md)."""
    return f"# {title}\n\n## OpenAPI Specification\n\n```yaml\n{fragment}\n```\n"


def facts(fields: list[dict]) -> list[dict]:
    return [
        {k: v for k, v in f.items() if not (k == "required" and v is False) and k != "note"} for f in fields
    ]


@pytest.mark.parametrize(
    ("document", "model"),
    [
        ("seedream-4-5-edit.openapi.yaml", "seedream/4.5-edit"),
        ("seedream-4-5-text-to-image.openapi.yaml", "seedream/4.5-text-to-image"),
    ],
)
def test_kies_own_page_reads_back_as_the_bundled_entry(document, model):
    url = "https://docs.kie.ai/market/seedream/x.md"
    page = pages.parse_page(as_page((OPENAPI / document).read_text()), url, "2026-12-07")
    bundled = json.loads((models.CATALOG_DIR / f"{model.replace('/', '__')}.json").read_text())
    assert page["model"] == model and page["kind"] == "image" and page["family"] == "Seedream"
    assert facts(page["fields"]) == facts(bundled["fields"])
    assert page["doc_url"] == url and page["read_at"] == "2026-12-07"


def test_oneof_alternatives_are_joined_loosely():
    fragment = """
paths:
  /api/v1/jobs/createTask:
    post:
      tags: [docs/en/Market/Video    Models/Kling]
      requestBody:
        content:
          application/json:
            schema:
              properties:
                model: {type: string, enum: [kling-3.0-omni/image-to-video]}
                input: {$ref: '#/components/schemas/Input'}
components:
  schemas:
    Input:
      oneOf:
        - properties:
            prompt: {type: string, maxLength: 2000}
            image_urls: {type: array, items: {type: string}, maxItems: 1}
          required: [prompt, image_urls]
        - properties:
            prompt: {type: string, maxLength: 3072}
            image_urls: {type: array, items: {type: string}, maxItems: 2}
            tail: {type: boolean}
          required: [prompt]
"""
    page = pages.parse_page(as_page(fragment), "u", "d")
    assert page["kind"] == "video" and page["family"] == "Kling"
    by_name = {f["name"]: f for f in page["fields"]}
    assert by_name["prompt"] == {"name": "prompt", "type": "string", "required": True, "max_length": 3072}
    assert by_name["image_urls"]["max_items"] == 2 and "required" not in by_name["image_urls"]
    assert by_name["tail"]["type"] == "boolean"


def test_file_fields_their_types_sizes_and_reference_forms_come_from_the_page():
    fragment = """
paths:
  /api/v1/jobs/createTask:
    post:
      requestBody:
        content:
          application/json:
            schema:
              properties:
                model: {type: string, enum: [wrong/id]}
                input:
                  properties:
                    video_urls:
                      type: array
                      description: >-
                        HTTP, HTTPS, and OSS addresses (File URL after upload, not file content;
                        Accepted types: video/mp4, video/quicktime; Max size: 200.0MB)
                      items: {type: string, pattern: '^(https?|oss)://'}
                    first_frame_url:
                      type: string
                      description: >-
                        (File URL after upload, not file content; Accepted types: image/png) or asset://<assetId>
            example: {model: minimax-h3/image-to-video}
"""
    page = pages.parse_page(as_page(fragment), "u", "d")
    assert page["model"] == "minimax-h3/image-to-video"  # the example's id, as Kie's copy errors need
    videos, frame = page["fields"]
    assert videos["file"] == "video" and videos["accept"] == ["video/mp4", "video/quicktime"]
    assert videos["max_mb"] == 200 and videos["schemes"] == ["oss"]
    assert frame["file"] == "image" and frame["schemes"] == ["asset"]
    entry = models.KieModel.from_dict(page)
    assert entry.validate({"video_urls": ["oss://bucket/a.mp4"], "first_frame_url": "asset://asset-2026"})
    with pytest.raises(KieInputError, match="oss://"):
        entry.validate({"first_frame_url": "oss://bucket/a.png"})


def test_a_guide_is_no_model_and_a_broken_fragment_is_unreadable():
    assert pages.parse_page("# Market quickstart\n\nCreate a task, then poll it.\n", "u", "d") is None
    with pytest.raises(pages.PageUnreadable):
        pages.parse_page(as_page("paths: [unclosed"), "u", "d")


def test_llms_txt_lists_the_pages_on_the_docs_host_once_each():
    text = (
        "# Kie\n- Market > Image Models [Seedream](https://docs.kie.ai/market/seedream/4-5-edit.md): edit\n"
        "- [Again](https://docs.kie.ai/market/seedream/4-5-edit.md)\n"
        "- [Elsewhere](https://example.org/market/x.md)\n- [Veo](https://docs.kie.ai/veo3-api/generate.md)\n"
    )
    assert pages.parse_llms(text, "https://docs.kie.ai") == [
        "https://docs.kie.ai/market/seedream/4-5-edit.md",
        "https://docs.kie.ai/veo3-api/generate.md",
    ]


def test_a_value_json_cannot_carry_is_refused_whatever_validate_says():
    for validate in (True, "strict", False):
        with pytest.raises(KieInputError, match=r"'prompt'.*not a JSON value"):
            models.check_input("some/new-model", {"prompt": {1, 2}}, validate=validate)
    with pytest.raises(KieInputError, match="validate"):
        models.check_input(models.SEEDREAM_EDIT_MODEL, {"prompt": "p"}, validate="loose")


def test_a_page_for_a_model_keeps_what_a_page_does_not_state():
    base = {
        "kind": "video",
        "task": "image-to-video",
        "result": "resultUrls",
        "notes": ["n"],
        "fields": [{"name": "a", "type": "string", "note": "x"}],
    }
    page = {
        "model": "m",
        "kind": "image",
        "task": "",
        "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "boolean"}],
    }
    entry = pages.merged(page, base)
    assert entry["kind"] == "video" and entry["task"] == "image-to-video" and entry["notes"] == ["n"]
    assert entry["fields"] == [{"name": "a", "type": "string", "note": "x"}, {"name": "b", "type": "boolean"}]
