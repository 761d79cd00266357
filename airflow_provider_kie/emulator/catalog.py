"""createTask checked against the catalog's facts by the emulator's own code: each model's entry
turned into a JSON Schema and checked with ``jsonschema``, never with the client's validator, so a
wrong client check and a wrong catalog fact each show up as a disagreement in the tests.

Also what a model makes (image, video, audio), for the results the emulator serves.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CATALOG_DIR = Path(__file__).resolve().parent.parent / "catalog"
_SCALARS = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
_ITEMS = {"array[string]": "string", "array[object]": "object", "array[array]": "array"}
URL_PATTERN = r"^https?://[^/\s]+"


@cache
def facts(model: str) -> dict[str, Any] | None:
    """The catalog entry of ``model`` as data, or None for a model it does not list."""
    path = CATALOG_DIR / f"{model.replace('/', '__')}.json"
    if path.parent != CATALOG_DIR or path.name.startswith(("_", ".")) or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def kind(model: str) -> str:
    """image, video or audio: what ``model`` makes (image for a model outside the catalog)."""
    entry = facts(model)
    return entry["kind"] if entry else "image"


def result_shape(model: str) -> str:
    """How the catalog says ``model`` returns its result: ``resultUrls``, or ``resultObject`` (data)."""
    entry = facts(model)
    return entry["result"] if entry else "resultUrls"


def field_schema(field: dict[str, Any]) -> dict[str, Any]:
    """One input field as JSON Schema."""
    schema: dict[str, Any] = {}
    if field["type"] in _SCALARS:
        schema["type"] = _SCALARS[field["type"]]
    elif field["type"] in _ITEMS:
        schema["type"] = "array"
        schema["items"] = {"type": _ITEMS[field["type"]]}
    keywords = {
        "enum": "enum", "min": "minimum", "max": "maximum", "min_length": "minLength",
        "max_length": "maxLength", "min_items": "minItems", "max_items": "maxItems",
    }  # fmt: skip
    for fact, keyword in keywords.items():
        if fact in field and not (keyword in ("minimum", "maximum") and schema.get("type") == "string"):
            schema[keyword] = field[fact]
    if field.get("file"):
        url = {"type": "string", "pattern": URL_PATTERN}
        if schema.get("type") == "array":
            schema["items"] = url
            schema.setdefault("minItems", 1 if field.get("required") else 0)
        else:
            schema.update(url)
    return schema


@cache
def input_schema(model: str) -> dict[str, Any] | None:
    """The JSON Schema of ``model``'s createTask ``input``, from its catalog entry."""
    entry = facts(model)
    if entry is None:
        return None
    return {
        "type": "object",
        "properties": {f["name"]: field_schema(f) for f in entry["fields"]},
        # A required field with a default may be left out: Kie applies its default.
        "required": [f["name"] for f in entry["fields"] if f.get("required") and "default" not in f],
        "additionalProperties": entry.get("fields_complete", True) is False,
    }


@cache
def _validator(model: str) -> Any:
    import jsonschema  # comes with Airflow

    schema = input_schema(model)
    return None if schema is None else jsonschema.Draft7Validator(schema)


def input_problem(model: str, task_input: dict[str, Any]) -> str | None:
    """Why Kie would refuse ``task_input`` for ``model`` by its catalog facts, or None."""
    validator = _validator(model)
    if validator is None:
        return None
    error = next(iter(sorted(validator.iter_errors(task_input), key=lambda e: list(e.path))), None)
    if error is None:
        return None
    path = list(error.absolute_path)
    if not path and error.validator == "required":
        path = [error.message.split("'")[1]]
    if not path and error.validator == "additionalProperties":
        path = [error.message.split("'")[1]]
    where = ".".join(["input", *(str(p) for p in path[:1])])
    return f"{where}: {error.message}"
