"""createTask requests checked against Kie's own OpenAPI documents (vendored in ``openapi/``), never
against the client's validation code, so the emulator catches a client that validates wrongly.

Kie's schemas are looser than Kie's behaviour (no ``minItems``, ``input`` not required, an empty prompt
allowed); the few rules Kie documents in prose or enforces in practice (docs/kie-api.md §1, §8) are
added here, by the emulator, in its own words. Other models, and these two when a test changed their
page, are checked against the facts of the page the emulator serves (``catalog.py``); a model outside
the catalog passes unchecked.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow_provider_kie.emulator import catalog

if TYPE_CHECKING:
    from airflow_provider_kie.emulator.state import EmulatorState

OPENAPI_DIR = Path(__file__).with_name("openapi")
CREATE_TASK_DOCUMENTS = {
    "seedream/4.5-edit": "seedream-4-5-edit.openapi.yaml",
    "seedream/4.5-text-to-image": "seedream-4-5-text-to-image.openapi.yaml",
}


@cache
def document(name: str) -> dict[str, Any]:
    """One vendored OpenAPI document, parsed (PyYAML comes with Airflow)."""
    import yaml

    return yaml.safe_load((OPENAPI_DIR / name).read_text())


def inline_refs(node: Any, root: dict[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by what it points at."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
            target: Any = root
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            return inline_refs(copy.deepcopy(target), root)
        return {k: inline_refs(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [inline_refs(v, root) for v in node]
    return node


def request_schema(name: str, path: str, method: str = "post") -> dict[str, Any]:
    doc = document(name)
    body = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return inline_refs(body, doc)


def response_schema(name: str, path: str, method: str, status: str = "200") -> dict[str, Any]:
    doc = document(name)
    body = doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    return inline_refs(body, doc)


@cache
def _create_task_validator(model: str) -> Any:
    import jsonschema  # comes with Airflow

    schema = request_schema(CREATE_TASK_DOCUMENTS[model], "/api/v1/jobs/createTask")
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("uri")(_is_http_url)
    return jsonschema.Draft7Validator(schema, format_checker=checker)


def create_task_problem(state: EmulatorState, body: Any) -> str | None:
    """Why Kie would reject this createTask body, or None if it would accept it."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    model, task_input = body.get("model"), body.get("input")
    if not isinstance(model, str) or not model:
        return "model is required"
    if not isinstance(task_input, dict):
        return "input is required and must be an object"
    if model not in CREATE_TASK_DOCUMENTS or model in state.pages:
        return catalog.input_problem(catalog.checked_facts(state, model), task_input)
    error = next(
        iter(sorted(_create_task_validator(model).iter_errors(body), key=lambda e: list(e.path))), None
    )
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "body"
        return f"{where}: {error.message}"
    # Kie rejects an empty required field although the schema allows it: a blank prompt, no image.
    required = _create_task_validator(model).schema["properties"]["input"].get("required", [])
    for name in required:
        value = task_input.get(name)
        if (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value):
            return f"input.{name} must not be empty"
    return None


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the schema's type rule reports it
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)
