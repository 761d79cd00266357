"""The emulator's Kie pages and its check of createTask against them, by its own code.

Each model's facts are read from the catalog's data files (never through the client's ``models.py``)
and, where a test changed Kie's pages (:attr:`EmulatorState.pages`: a model's facts replaced, added, or
``None``: gone from the pages), from there. What the emulator serves as the model's page (an OpenAPI
fragment in Kie's format, listed in ``/llms.txt``) and what its createTask accepts come from the same
facts: an input schema checked with ``jsonschema``. So a wrong client check, a wrong catalog fact or a
wrong reading of a page each show up as a disagreement in the tests.

Also what a model makes (image, video, audio), for the results the emulator serves.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from airflow_provider_kie.emulator.state import EmulatorState

CATALOG_DIR = Path(__file__).resolve().parent.parent / "catalog"
CREATE_TASK_PATH = "/api/v1/jobs/createTask"
_SCALARS = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
_ITEMS = {
    "array[string]": "string",
    "array[object]": "object",
    "array[array]": "array",
    "array[number]": "number",
}
_KEYWORDS = {
    "enum": "enum", "default": "default", "min": "minimum", "max": "maximum", "min_length": "minLength",
    "max_length": "maxLength", "min_items": "minItems", "max_items": "maxItems",
}  # fmt: skip


@cache
def bundled(model: str) -> dict[str, Any] | None:
    """The catalog's data file of ``model``, or None for a model it does not list."""
    path = CATALOG_DIR / f"{model.replace('/', '__')}.json"
    if path.parent != CATALOG_DIR or path.name.startswith(("_", ".")) or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def bundled_names() -> tuple[str, ...]:
    return tuple(
        sorted(p.stem.replace("__", "/") for p in CATALOG_DIR.glob("*.json") if not p.name.startswith("_"))
    )


def facts(state: EmulatorState, model: str) -> dict[str, Any] | None:
    """What Kie documents of ``model`` now: the page a test set, else the catalog's data; None for a
    model Kie does not document (gone from its pages, or never there)."""
    if model in state.pages:
        return state.pages[model]
    found = bundled(model)
    return None if found is None or found.get("status") == "gone" else found


def documented(state: EmulatorState) -> list[str]:
    """Every model Kie's pages document now."""
    names = {*bundled_names(), *state.pages}
    return sorted(name for name in names if facts(state, name) is not None)


def kind(state: EmulatorState, model: str) -> str:
    """image, video or audio: what ``model`` makes (image for a model outside the catalog)."""
    entry = facts(state, model) or bundled(model)
    return entry["kind"] if entry else "image"


def result_shape(state: EmulatorState, model: str) -> str:
    """How ``model`` returns its result: ``resultUrls``, or ``resultObject`` (data)."""
    entry = facts(state, model) or bundled(model)
    return entry.get("result", "resultUrls") if entry else "resultUrls"


def checked_facts(state: EmulatorState, model: str) -> dict[str, Any] | None:
    """The facts createTask checks ``model`` by: its page's, or, for a model gone from the pages, what
    the catalog last knew (Kie still runs some delisted models); None: unchecked."""
    return facts(state, model) if model in state.pages else bundled(model)


# --------------------------------------------------------------------------- schemas


def property_schema(field: dict[str, Any]) -> dict[str, Any]:
    """One input field as a page states it (JSON Schema plus Kie's words for file fields)."""
    schema: dict[str, Any] = {}
    if field["type"] in _SCALARS:
        schema["type"] = _SCALARS[field["type"]]
    elif field["type"] in _ITEMS:
        schema["type"] = "array"
        schema["items"] = {"type": _ITEMS[field["type"]]}
        if field.get("item_fields"):
            schema["items"]["properties"] = {name: {} for name in field["item_fields"]}
    for fact, keyword in _KEYWORDS.items():
        if field.get(fact) is not None:
            schema[keyword] = field[fact]
    if field.get("file"):
        schemes = ["https?", *field.get("schemes", ())]
        url = {"type": "string", "pattern": f"^({'|'.join(schemes)})://[^/\\s]+"}
        if schema.get("type") == "array":
            schema["items"] = url
        else:
            schema.update(url)
        major = "application" if field["file"] == "document" else field["file"]
        accepted = ", ".join(field.get("accept") or ()) or f"{major}/*"
        size = f"; Max size: {field['max_mb']}MB" if "max_mb" in field else ""
        assets = " Also takes asset://<assetId> references." if "asset" in field.get("schemes", ()) else ""
        schema["description"] = (
            f"(File URL after upload, not file content; Accepted types: {accepted}{size}){assets}"
        )
    return schema


def input_schema(entry: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema createTask's ``input`` is checked by, from a model's facts."""
    return {
        "type": "object",
        "properties": {f["name"]: _checked(f, property_schema(f)) for f in entry["fields"]},
        # A required field with a default may be left out: Kie applies its default.
        "required": [f["name"] for f in entry["fields"] if f.get("required") and "default" not in f],
        "additionalProperties": entry.get("fields_complete", True) is False,
    }


def _checked(field: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    # A number Kie wants as text carries its bounds on the page; JSON Schema bounds only numbers.
    checked = {k: v for k, v in schema.items() if k not in ("default", "description")}
    if field.get("file") and checked.get("type") == "array" and field.get("required"):
        checked.setdefault("minItems", 1)  # Kie refuses a required list of files left empty
    return checked


@cache
def _validator(text: str) -> Any:
    import jsonschema  # comes with Airflow

    return jsonschema.Draft7Validator(json.loads(text))


def input_problem(entry: dict[str, Any] | None, task_input: dict[str, Any]) -> str | None:
    """Why Kie would refuse ``task_input`` by a model's facts (``entry``), or None."""
    if entry is None:
        return None
    validator = _validator(json.dumps(input_schema(entry), sort_keys=True))
    error = next(iter(sorted(validator.iter_errors(task_input), key=lambda e: list(e.path))), None)
    if error is None:
        return None
    path = list(error.absolute_path)
    if not path and error.validator in ("required", "additionalProperties"):
        path = [error.message.split("'")[1]]
    where = ".".join(["input", *(str(p) for p in path[:1])])
    return f"{where}: {error.message}"


# --------------------------------------------------------------------------- pages


def page_path(model: str, entry: dict[str, Any]) -> str:
    return urlparse(entry.get("doc_url") or "").path or f"/market/{model}.md"


def _title(model: str) -> str:
    return model.replace("/", " - ").replace("-", " ").title()


QUICKSTART = "/market/quickstart.md"


def page(state: EmulatorState, path: str) -> str | None:
    """The page at ``path`` in Kie's format (a title, then its OpenAPI fragment in a yaml block)."""
    if path == QUICKSTART:  # a guide: no model on it
        return "# Market quickstart\n\nCreate a task with POST /api/v1/jobs/createTask, then poll it.\n"
    for model in documented(state):
        entry = facts(state, model)
        if entry is not None and page_path(model, entry) == path:
            import yaml  # comes with Airflow

            fragment = yaml.safe_dump(openapi(model, entry), sort_keys=False, allow_unicode=True)
            return f"# {_title(model)}\n\n## OpenAPI Specification\n\n```yaml\n{fragment}```\n"
    return None


def openapi(model: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A model page's OpenAPI fragment, shaped as Kie's pages shape it."""
    fields = entry["fields"]
    given = {
        "type": "object",
        "description": "Input parameters for the generation task",
        "properties": {f["name"]: property_schema(f) for f in fields},
        "required": [f["name"] for f in fields if f.get("required")],
    }
    example = {f["name"]: f["default"] for f in fields if "default" in f}
    folder = f"docs/en/Market/{entry.get('kind', 'image').title()}    Models/{entry.get('family') or 'Other'}"
    return {
        "openapi": "3.0.1",
        "info": {"title": "", "description": "", "version": "1.0.0"},
        "paths": {
            CREATE_TASK_PATH: {
                "post": {
                    "summary": _title(model),
                    "tags": [folder],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["model"],
                                    "properties": {
                                        "model": {"type": "string", "enum": [model], "default": model},
                                        "callBackUrl": {"type": "string", "format": "uri"},
                                        "input": given,
                                    },
                                },
                                "example": {"model": model, "input": example},
                            }
                        }
                    },
                    "responses": {"200": {"description": "Request successful"}},
                    "x-apidog-folder": folder,
                }
            }
        },
    }


def llms_txt(state: EmulatorState, base_url: str) -> str:
    """The docs' index: a line and a link per page, as Kie's ``llms.txt`` lists them."""
    lines = ["# Kie AI API (emulated)", "", "## Market"]
    for model in documented(state):
        entry = facts(state, model)
        assert entry is not None
        kind = entry.get("kind", "image").title()
        lines.append(
            f"- Market > {kind} Models [{_title(model)}]({base_url}{page_path(model, entry)}): {model}"
        )
    lines += ["", "## Guides", f"- [Market quickstart]({base_url}{QUICKSTART}): how to create tasks"]
    return "\n".join(lines) + "\n"
