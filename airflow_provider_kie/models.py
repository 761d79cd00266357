"""The catalog of Kie Market models: one declarative entry per model, kept as data.

Each model's facts (its ``input`` fields with their types, whether required, allowed values, ranges,
lengths and file counts, which fields take files of which types and sizes; its kind, its result; where
the facts come from) live in ``catalog/<model id, "/" as "__">.json``. An entry is read the first time
its model is used, so importing the operators reads only the entries of the typed operators.
``docs/models.md`` is generated from the same files (``scripts/models-doc``).

The generic and batch operators and the hooks validate any catalog model's ``input`` after templates
render and before any request. A model outside the catalog runs unvalidated with a warning (Kie adds
models weekly); ``validate=False`` skips the catalog for a model whose page changed since.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from airflow_provider_kie.api import is_http_url, validate_callback_url
from airflow_provider_kie.exceptions import KieInputError

CATALOG_DIR = Path(__file__).with_name("catalog")
log = logging.getLogger(__name__)

# Object stores Airflow reaches through its providers; a file input under another scheme is refused.
FILE_SCHEMES = ("file", "s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "wasb", "wasbs")


def is_file_ref(item: Any) -> bool:
    """An ObjectStoragePath, an absolute local path, or a URI of one of FILE_SCHEMES."""
    if hasattr(item, "protocol") and hasattr(item, "open"):  # an ObjectStoragePath, without importing it
        return True
    if not isinstance(item, str):
        return False
    return item.startswith("/") or (urlparse(item).scheme in FILE_SCHEMES and "://" in item)


class _Refused(ValueError):
    """A value a field does not take; the model adds its name and provenance."""


@dataclass(frozen=True)
class Field:
    """One ``input`` field as the catalog describes it. ``file`` (image, video, audio or document) marks
    a field that takes URLs of hosted files, of the ``accept`` types and at most ``max_mb`` each."""

    name: str
    type: str = "unspecified"  # string, integer, number, boolean, array[string|object|array], unspecified
    required: bool = False
    default: Any = None
    enum: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    file: str | None = None
    accept: tuple[str, ...] = ()
    max_mb: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Field:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known
        }
        return cls(**values)

    @property
    def is_list(self) -> bool:
        return self.type.startswith("array")

    @property
    def max_bytes(self) -> int | None:
        return None if self.max_mb is None else int(self.max_mb * 1024 * 1024)

    def allowed(self) -> str:
        """What the field takes, in words, for errors and docs."""
        if self.enum is not None:
            return "one of " + ", ".join(map(str, self.enum))
        bounds = [
            f"≥ {self.min:g}" if self.min is not None else "",
            f"≤ {self.max:g}" if self.max is not None else "",
        ]
        if self.max_length is not None:
            bounds.append(f"at most {self.max_length} characters")
        text = " and ".join(b for b in bounds if b)
        return f"a {self.type} {text}".strip() if text else f"a {self.type}"

    def check(self, value: Any, *, files: bool = False) -> Any:
        """``value`` as Kie takes it: an unambiguous number or flag given as text, or a number where Kie
        wants text (``duration: 5`` for ``"5"``), is converted; anything else not allowed raises."""
        if self.is_list:
            return self._check_list(value, files)
        if self.file:
            return self._check_file(0, value, files)
        if self.type == "boolean":
            value = _as_bool(value)
        elif self.type in ("integer", "number"):
            value = _as_number(value, self.type == "integer")
        elif self.type == "string":
            value = self._check_text(value)
        if self.enum is not None and (
            value not in self.enum or isinstance(value, bool) != _has_bool(self.enum)
        ):
            raise _Refused(f"got {value!r}; allowed values: {', '.join(map(str, self.enum))}")
        number = (
            _as_number(value, False)
            if self.type == "string" and (self.min, self.max) != (None, None)
            else value
        )
        if (self.min is not None and number < self.min) or (self.max is not None and number > self.max):
            raise _Refused(f"got {value!r}; allowed: {self.allowed()}")
        return value

    def _check_text(self, value: Any) -> str:
        number_like = self.enum is not None or (self.min, self.max) != (None, None)
        if number_like and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(int(value)) if float(value).is_integer() else str(value)
        if not isinstance(value, str):
            raise _Refused(f"must be a string, got {type(value).__name__}")
        if self.required and not value.strip():
            raise _Refused("must be a non-empty string")
        if self.max_length is not None and len(value) > self.max_length:
            raise _Refused(f"has {len(value)} characters; at most {self.max_length} are allowed")
        if self.min_length is not None and len(value) < self.min_length:
            raise _Refused(f"has {len(value)} characters; at least {self.min_length} are required")
        return value

    def _check_list(self, value: Any, files: bool) -> list[Any]:
        if (
            isinstance(value, str)
            or is_file_ref(value)
            or (isinstance(value, Mapping) and self.type == "array[object]")
        ):
            value = [value]
        if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
            raise _Refused(f"must be a list, got {type(value).__name__}")
        # Required files need one; a required list of options may be empty (Kie's pages give no minimum).
        least = self.min_items if self.min_items is not None else int(self.required and bool(self.file))
        most = self.max_items if self.max_items is not None else len(value)
        if not least <= len(value) <= most:
            raise _Refused(f"has {len(value)} items; between {least} and {most} are allowed")
        if self.file:
            return [self._check_file(i, item, files) for i, item in enumerate(value)]
        item_type = {"array[string]": str, "array[object]": Mapping, "array[array]": list}.get(
            self.type, object
        )
        for i, item in enumerate(value):
            if not isinstance(item, item_type):
                raise _Refused(f"item {i} must be a {self.type[6:-1]}, got {item!r}")
        return list(value)

    def _check_file(self, index: int, item: Any, files: bool) -> Any:
        if (isinstance(item, str) and is_http_url(item)) or (files and is_file_ref(item)):
            return item
        allowed = (
            f"an http(s) URL, an absolute local path, or a URI of {', '.join(FILE_SCHEMES)}"
            if files
            else "an http(s) URL"
        )
        where = f"item {index}" if self.is_list else "it"
        raise _Refused(f"{where} must be {allowed}, got {item!r}")


def _as_bool(value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise _Refused(f"must be True or False, got {value!r}")
    return value


def _as_number(value: Any, integer: bool) -> Any:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _Refused(f"must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Refused(f"must be a number, got {value!r}")
    if float(value).is_integer():
        return int(value)
    if integer:
        raise _Refused(f"must be a whole number, got {value!r}")
    return value


def _has_bool(values: Sequence[Any]) -> bool:
    return any(isinstance(v, bool) for v in values)


@dataclass(frozen=True)
class KieModel:
    """A Kie Market model: its id, its ``input`` fields, and what the catalog knows of it.
    ``confidence`` is ``doc`` (read from Kie's own page) or ``third-party`` (seen only in others' code);
    ``fields_complete`` is False where only some fields are known (unknown fields then pass unchecked)."""

    name: str
    fields: tuple[Field, ...]
    kind: str = "image"
    task: str = ""
    family: str = ""
    result: str = "resultUrls"
    confidence: str = "doc"
    fields_complete: bool = True
    doc_url: str = ""
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    drift: tuple[str, ...] = ()
    status: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KieModel:
        known = {f.name for f in fields(cls)} - {"name", "fields"}
        extra: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known
        }
        return cls(data["model"], tuple(Field.from_dict(f) for f in data["fields"]), **extra)

    @property
    def template_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def file_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.file)

    @property
    def provenance(self) -> str:
        """Where the entry's facts come from, in a phrase for errors."""
        if self.confidence == "doc":
            return f"model {self.name}, from Kie's page {self.doc_url}"
        return f"model {self.name}, known only from third-party material, not from a Kie page"

    def validate(self, input: Mapping[str, Any], *, files: bool = False) -> dict[str, Any]:
        """The ``input`` object of createTask: required fields present (a documented default filled in),
        every field checked and converted. With ``files``, file fields may also name files the caller
        uploads before sending."""
        by_name = {f.name: f for f in self.fields}
        unknown = sorted(set(input) - set(by_name))
        if unknown and self.fields_complete:
            raise KieInputError(
                "input",
                f"unknown field(s) {', '.join(unknown)} ({self.provenance}); its fields: {', '.join(by_name)}. "
                "If Kie added the field since, pass validate=False",
            )
        result: dict[str, Any] = {name: input[name] for name in unknown}
        for f in self.fields:
            value = input.get(f.name)
            if value is None and f.required:
                value = f.default
            if value is None:
                if f.required:
                    raise KieInputError(f.name, f"is required ({self.provenance})")
                continue
            try:
                result[f.name] = f.check(value, files=files)
            except _Refused as refused:
                raise KieInputError(f.name, f"{refused} ({self.provenance})") from None
        return result


@cache
def entry(model: str) -> KieModel | None:
    """The catalog entry of ``model``, read on first use; None for a model the catalog does not know."""
    path = CATALOG_DIR / f"{model.replace('/', '__')}.json"
    if path.parent != CATALOG_DIR or path.name.startswith(("_", ".")) or not path.is_file():
        return None
    return KieModel.from_dict(json.loads(path.read_text(encoding="utf-8")))


def catalog_model(model: str) -> KieModel:
    """The catalog entry of a model the provider has an operator for (its data ships with the package)."""
    found = entry(model)
    if found is None:
        raise LookupError(f"{model} is missing from {CATALOG_DIR}: the package is incomplete")
    return found


def kind_of(model: str | None) -> str | None:
    """What ``model`` makes (image, video or audio) by its catalog entry; None outside the catalog."""
    found = entry(model) if model else None
    return found.kind if found else None


def names() -> list[str]:
    """Every model id of the catalog."""
    return sorted(p.stem.replace("__", "/") for p in CATALOG_DIR.glob("*.json") if not p.name.startswith("_"))


SEEDREAM_EDIT_MODEL = "seedream/4.5-edit"
SEEDREAM_TEXT_TO_IMAGE_MODEL = "seedream/4.5-text-to-image"


@cache
def _warn_unknown(model: str) -> None:
    log.warning(
        "Model %r is not in the provider's catalog: its input is sent unvalidated, and Kie judges it "
        "(docs/models.md lists the catalog)",
        model,
    )


def validate_input(
    model: str, input: Mapping[str, Any], *, files: bool = False, validate: bool = True
) -> dict[str, Any]:
    """``input`` checked against the catalog entry of ``model``; other models, or ``validate=False``,
    pass through unchanged."""
    known = entry(model) if validate else None
    if known is None:
        if validate:
            _warn_unknown(model)
        return dict(input)
    return known.validate(input, files=files)


def create_task_body(
    model: str,
    input: Mapping[str, Any],
    callback_url: str | None = None,
    *,
    files: bool = False,
    validate: bool = True,
) -> dict[str, Any]:
    """The JSON body of ``POST /api/v1/jobs/createTask``, validated before any request is made."""
    if not isinstance(model, str) or not model.strip():
        raise KieInputError("model", f"must be a non-empty model name such as {SEEDREAM_EDIT_MODEL!r}")
    if not isinstance(input, Mapping):
        raise KieInputError(
            "input", f"must be a dict of the model's input fields, got {type(input).__name__}"
        )
    body: dict[str, Any] = {"model": model}
    if callback_url is not None:
        body["callBackUrl"] = validate_callback_url(callback_url)
    body["input"] = validate_input(model, input, files=files, validate=validate)
    return body


def file_inputs(model: str, model_input: Mapping[str, Any]) -> list[Any]:
    """Every item of ``model_input``'s file fields (URLs, paths, URIs, ObjectStoragePaths), as given."""
    known = entry(model)
    given = [model_input.get(f.name) for f in known.file_fields] if known else []
    return [
        item
        for value in given
        if value is not None
        for item in (value if isinstance(value, list) else [value])
    ]


def rejected_hint(model: str) -> str:
    """What to add to Kie's refusal of a catalog model's input: the catalog may be out of date."""
    known = entry(model)
    if known is None:
        return ""
    return (
        f"; {model} is in the provider's catalog ({known.provenance}), which may be out of date for it: "
        "check the model's page, and pass validate=False to send input the catalog refuses"
    )
