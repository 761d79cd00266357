"""The catalog of Kie models this provider knows: one declarative entry per model.

An entry names the model, its input fields, how each is validated, which are files and which are
templated. The generic operator validates any known model's ``input`` with it, and a typed operator
(``SeedreamEditOperator``) takes its parameters, defaults and ``template_fields`` from it, so adding a
Kie model is adding one entry here (and, if users want one, a five-line typed operator).
Unknown models pass through unchecked: Kie then judges the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from airflow_provider_kie.api import is_http_url, validate_callback_url
from airflow_provider_kie.exceptions import KieInputError


@dataclass(frozen=True)
class Text:
    """A required string of 1 to ``max_length`` characters."""

    max_length: int

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise KieInputError(name, f"must be a non-empty string of at most {self.max_length} characters")
        if len(value) > self.max_length:
            raise KieInputError(name, f"has {len(value)} characters; at most {self.max_length} are allowed")
        return value


@dataclass(frozen=True)
class Choice:
    """One of a fixed list of values."""

    values: tuple[Any, ...]

    def check(self, name: str, value: Any) -> Any:
        if value not in self.values:
            raise KieInputError(name, f"got {value!r}; allowed values: {', '.join(map(str, self.values))}")
        return value


@dataclass(frozen=True)
class Flag:
    """An optional boolean, omitted from the request when None."""

    def check(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise KieInputError(name, f"must be True, False or None, got {value!r}")
        return value


# Object stores Airflow reaches through its providers; a file input under another scheme is refused.
FILE_SCHEMES = ("file", "s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "wasb", "wasbs")


def is_file_ref(item: Any) -> bool:
    """An ObjectStoragePath, an absolute local path, or a URI of one of FILE_SCHEMES."""
    if hasattr(item, "protocol") and hasattr(item, "open"):  # an ObjectStoragePath, without importing it
        return True
    if not isinstance(item, str):
        return False
    return item.startswith("/") or (urlparse(item).scheme in FILE_SCHEMES and "://" in item)


@dataclass(frozen=True)
class FileUrls:
    """1 to ``max_items`` files (one item is a list of one): http(s) URLs Kie fetches, or, where the
    caller uploads them first (``files=True``), local paths, object-storage URIs or ObjectStoragePaths."""

    max_items: int
    media_types: tuple[str, ...]
    max_bytes: int

    def check(self, name: str, value: Any, *, files: bool = False) -> list[Any]:
        if isinstance(value, str) or is_file_ref(value):
            value = [value]
        if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
            raise KieInputError(
                name, f"must be a list of 1 to {self.max_items} http(s) URLs, got {type(value).__name__}"
            )
        urls = list(value)
        if not 1 <= len(urls) <= self.max_items:
            raise KieInputError(name, f"has {len(urls)} URLs; between 1 and {self.max_items} are allowed")
        for i, item in enumerate(urls):
            if (isinstance(item, str) and is_http_url(item)) or (files and is_file_ref(item)):
                continue
            allowed = (
                f"an http(s) URL, an absolute local path, or a URI of {', '.join(FILE_SCHEMES)}"
                if files
                else "an http(s) URL"
            )
            raise KieInputError(name, f"item {i} must be {allowed}, got {item!r}")
        return urls


@dataclass(frozen=True)
class Field:
    """One input field: its rule, its default when absent (None: none), required or optional, templated."""

    name: str
    rule: Text | Choice | Flag | FileUrls
    default: Any = None
    required: bool = True
    templated: bool = True

    @property
    def is_file(self) -> bool:
        return isinstance(self.rule, FileUrls)


@dataclass(frozen=True)
class KieModel:
    """A Kie Market model: its name and its ``input`` fields."""

    name: str
    fields: tuple[Field, ...]

    @property
    def template_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.templated)

    def validate(self, input: Mapping[str, Any], *, files: bool = False) -> dict[str, Any]:
        """The ``input`` object of createTask: defaults filled, every field checked, nothing unknown.
        With ``files``, file fields may also name files the caller uploads before sending."""
        unknown = set(input) - {f.name for f in self.fields}
        if unknown:
            raise KieInputError("input", f"unknown field(s) for {self.name}: {', '.join(sorted(unknown))}")
        result: dict[str, Any] = {}
        for f in self.fields:
            value = input.get(f.name, f.default)
            if value is None and not f.required:
                continue
            if isinstance(f.rule, FileUrls):
                result[f.name] = f.rule.check(f.name, value, files=files)
            else:
                result[f.name] = f.rule.check(f.name, value)
        return result


MAX_PROMPT_CHARS = 3000
ASPECT_RATIOS = ("1:1", "4:3", "3:4", "16:9", "9:16", "2:3", "3:2", "21:9")
QUALITIES = ("basic", "high")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
MAX_IMAGE_URLS = 14

_PROMPT = Field("prompt", Text(MAX_PROMPT_CHARS))
_SEEDREAM_OPTIONS = (
    Field("aspect_ratio", Choice(ASPECT_RATIOS), default="1:1"),
    Field("quality", Choice(QUALITIES), default="basic"),
    # Only in the newer spec; its wording is garbled, so it is sent only when the user sets it.
    Field("nsfw_checker", Flag(), required=False, templated=False),
)

SEEDREAM_EDIT = KieModel(
    "seedream/4.5-edit",
    (
        _PROMPT,
        Field("image_urls", FileUrls(MAX_IMAGE_URLS, IMAGE_TYPES, 10 * 1024 * 1024)),
        *_SEEDREAM_OPTIONS,
    ),
)
SEEDREAM_TEXT_TO_IMAGE = KieModel("seedream/4.5-text-to-image", (_PROMPT, *_SEEDREAM_OPTIONS))

CATALOG: dict[str, KieModel] = {model.name: model for model in (SEEDREAM_EDIT, SEEDREAM_TEXT_TO_IMAGE)}

SEEDREAM_EDIT_MODEL = SEEDREAM_EDIT.name
SEEDREAM_TEXT_TO_IMAGE_MODEL = SEEDREAM_TEXT_TO_IMAGE.name


def validate_input(model: str, input: Mapping[str, Any], *, files: bool = False) -> dict[str, Any]:
    """``input`` checked against the catalog entry of ``model``; unknown models pass through unchanged."""
    entry = CATALOG.get(model)
    return entry.validate(input, files=files) if entry else dict(input)


def create_task_body(
    model: str, input: Mapping[str, Any], callback_url: str | None = None, *, files: bool = False
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
    body["input"] = validate_input(model, input, files=files)
    return body


def file_inputs(model: str, model_input: Mapping[str, Any]) -> list[Any]:
    """Every item of ``model_input``'s file fields (URLs, paths, URIs, ObjectStoragePaths), as given."""
    known = CATALOG.get(model)
    fields = [f.name for f in known.fields if isinstance(f.rule, FileUrls)] if known else []
    return [item for name in fields for item in (model_input.get(name) or ())]
