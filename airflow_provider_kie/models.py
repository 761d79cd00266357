"""The catalog of Kie Market models: one declarative entry per model, kept as data.

Each model's facts (its ``input`` fields with their types, whether required, allowed values, ranges,
lengths and file counts, which fields take files of which types and sizes; its kind, its result; where
the facts come from) live in ``catalog/<model id, "/" as "__">.json``. An entry is read the first time
its model is used, so importing the operators reads only the entries of the typed operators.
``docs/models.md`` is generated from the same files (``scripts/models-doc``).

Entries under ``KIE_CATALOG_DIR`` (written by ``python -m airflow_provider_kie.catalog refresh``) are
read over the bundled ones, so the catalog follows Kie's pages without a release.

The generic and batch operators and the hooks validate any catalog model's ``input`` after templates
render and before any request (:func:`check_input`). Kie changes its pages weekly, so an input the
catalog refuses is checked again against the model's current page (:mod:`~airflow_provider_kie.pages`):
only what the page refuses too is refused; when the page cannot be read the input is sent with a warning
and Kie's answer decides. ``validate="strict"`` refuses on the catalog alone, ``validate=False`` skips it;
a model outside the catalog runs unvalidated with a warning.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from airflow_provider_kie.api import is_http_url, validate_callback_url
from airflow_provider_kie.exceptions import KieInputError

CATALOG_DIR = Path(__file__).with_name("catalog")
#: Where entries written by ``python -m airflow_provider_kie.catalog refresh`` are read from, over the
#: bundled ones, when set.
CATALOG_DIR_ENV = "KIE_CATALOG_DIR"
log = logging.getLogger(__name__)
#: ``validate``: True (the catalog, and Kie's current page for what it refuses), "strict" (the catalog
#: alone) or False (nothing checked).
Validate = bool | Literal["strict"]

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
    #: Reference forms Kie's page documents for a file field besides http(s) URLs: ``asset`` (an
    #: ``asset://<id>``), ``oss`` (an ``oss://`` address).
    schemes: tuple[str, ...] = ()

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

    def items(self, value: Any) -> list[tuple[int | None, Any]]:
        """``value`` as the field holds it: (index, item) for each item of a list, (None, value) for a
        field that takes one; none for no value."""
        if value is None:
            return []
        return list(enumerate(value)) if isinstance(value, list) else [(None, value)]

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
        if (isinstance(item, str) and (is_http_url(item) or self._documented_ref(item))) or (
            files and is_file_ref(item)
        ):
            return item
        forms = ["an http(s) URL", *(f"a {scheme}:// reference" for scheme in self.schemes)]
        allowed = (
            f"{', '.join(forms)}, an absolute local path, or a URI of {', '.join(FILE_SCHEMES)}"
            if files
            else " or ".join(forms)
        )
        where = f"item {index}" if self.is_list else "it"
        raise _Refused(f"{where} must be {allowed}, got {item!r}")

    def _documented_ref(self, item: str) -> bool:
        scheme, _, rest = item.partition("://")
        return scheme in self.schemes and bool(rest.strip())


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
class Refusal:
    """One fact of an entry that an input breaks: the field (or unknown key), the value as given, why."""

    field: str
    value: Any
    reason: str

    @property
    def key(self) -> str:
        """The field and value, as the key under which Kie's acceptance of them is kept."""
        return f"{self.field}={json.dumps(self.value, sort_keys=True, default=str)}"

    def error(self, model: KieModel, hint: str = "") -> KieInputError:
        return KieInputError(self.field, f"{self.reason} ({model.provenance}){hint}")


@dataclass(frozen=True)
class KieModel:
    """A Kie Market model: its id, its ``input`` fields, and what the catalog knows of it.
    ``confidence`` is ``doc`` (read from Kie's own page) or ``third-party`` (seen only in others' code);
    ``fields_complete`` is False where only some fields are known (unknown fields then pass unchecked).
    ``read_at`` is the date its page was read; ``status`` ``gone`` marks a model no longer on Kie's
    pages, last seen on ``last_seen``."""

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
    read_at: str = ""
    last_seen: str = ""

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
    def gone(self) -> bool:
        return self.status == "gone"

    @property
    def as_of(self) -> str:
        """The date of the entry's facts: its page's reading, else the bundled catalog's date."""
        return self.read_at or catalog_date()

    @property
    def provenance(self) -> str:
        """Where the entry's facts come from, in a phrase for errors."""
        if self.confidence == "doc":
            return f"model {self.name}, from Kie's page {self.doc_url} as of {self.as_of}"
        return f"model {self.name}, known only from third-party material, not from a Kie page"

    def checked(
        self, input: Mapping[str, Any], *, files: bool = False
    ) -> tuple[dict[str, Any], list[Refusal]]:
        """``input`` with every field checked and converted (a documented default filled in where a
        required field is missing), and every fact of the entry it breaks; a refused value stays as
        given. With ``files``, file fields may also name files the caller uploads before sending."""
        by_name = {f.name: f for f in self.fields}
        unknown = [name for name in input if name not in by_name]
        result: dict[str, Any] = {name: input[name] for name in unknown}
        refusals = [
            Refusal(name, input[name], f"is not one of the model's fields ({', '.join(by_name)})")
            for name in unknown
            if self.fields_complete
        ]
        for f in self.fields:
            value = input.get(f.name)
            if value is None and f.required:
                value = f.default
            if value is None:
                if f.required:
                    refusals.append(Refusal(f.name, None, "is required"))
                continue
            try:
                result[f.name] = f.check(value, files=files)
            except _Refused as refused:
                result[f.name] = value
                refusals.append(Refusal(f.name, value, str(refused)))
        return result, refusals

    def validate(self, input: Mapping[str, Any], *, files: bool = False) -> dict[str, Any]:
        """The ``input`` object of createTask by this entry alone; the first fact it breaks raises."""
        result, refusals = self.checked(input, files=files)
        if refusals:
            raise refusals[0].error(self)
        return result


def _catalog_dirs() -> tuple[Path, ...]:
    """Where entries are read from, first match wins: ``KIE_CATALOG_DIR`` (when set), then the bundled."""
    override = os.environ.get(CATALOG_DIR_ENV)
    return (Path(override), CATALOG_DIR) if override else (CATALOG_DIR,)


def entry(model: str) -> KieModel | None:
    """The catalog entry of ``model``, read on first use; None for a model the catalog does not know.
    An entry written under ``KIE_CATALOG_DIR`` since (a refresh renames its files into place, which
    changes the folder's time) is read again."""
    folders = _catalog_dirs()
    stamp = 0
    if len(folders) > 1:
        try:
            stamp = folders[0].stat().st_mtime_ns
        except OSError:
            stamp = -1
    return _entry(model, folders, stamp)


def forget_entries() -> None:
    """Read every entry again on its next use (after a refresh in this process)."""
    _entry.cache_clear()


@cache
def _entry(model: str, folders: tuple[Path, ...], stamp: int) -> KieModel | None:
    for folder in folders:
        path = folder / f"{model.replace('/', '__')}.json"
        if path.parent == folder and not path.name.startswith(("_", ".")) and path.is_file():
            return KieModel.from_dict(json.loads(path.read_text(encoding="utf-8")))
    return None


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
    """Every model id of the catalog (``KIE_CATALOG_DIR``'s and the bundled)."""
    return sorted(
        {
            p.stem.replace("__", "/")
            for d in _catalog_dirs()
            for p in d.glob("*.json")
            if not p.name.startswith("_")
        }
    )


@cache
def catalog_date() -> str:
    """The date of the bundled catalog's facts (the latest of Kie's pages it was brought to)."""
    about = json.loads((CATALOG_DIR / "_sources.json").read_text(encoding="utf-8"))
    return str(about.get("date") or "")


SEEDREAM_EDIT_MODEL = "seedream/4.5-edit"
SEEDREAM_TEXT_TO_IMAGE_MODEL = "seedream/4.5-text-to-image"


@cache
def _warn_unknown(model: str) -> None:
    log.warning(
        "Model %r is not in the provider's catalog: its input is sent unvalidated, and Kie judges it "
        "(docs/models.md lists the catalog)",
        model,
    )


@cache
def _warn_gone(model: str, last_seen: str) -> None:
    log.warning(
        "Model %r is gone from Kie's pages (last seen %s): Kie may refuse it or have replaced it "
        "(docs/models.md)",
        model,
        last_seen or "before the catalog's date",
    )


@cache
def _warn_unconfirmed(model: str, key: str, reason: str, as_of: str, why: str) -> None:
    log.warning(
        "input.%s of model %s is refused by the provider's catalog of %s (%s), and Kie's current page "
        "could not be read (%s): sending it as given, Kie's answer decides",
        key,
        model,
        as_of,
        reason,
        why,
    )


@dataclass(frozen=True)
class CheckedInput:
    """The ``input`` of createTask as checked, the entry that decided (the catalog's, or the current
    page's; None when nothing was checked), and the values sent unconfirmed (:attr:`Refusal.key`):
    the catalog refused them and Kie's page could not be read, so Kie's answer decides."""

    input: dict[str, Any]
    entry: KieModel | None = None
    unconfirmed: tuple[str, ...] = field(default=())


def check_input(
    model: str,
    input: Mapping[str, Any],
    *,
    files: bool = False,
    validate: Validate = True,
    docs_url: Callable[[], str | None] | str | None = None,
) -> CheckedInput:
    """``input`` checked for ``model``: by its catalog entry, and what the entry refuses by Kie's current
    page (see the module's docstring). ``docs_url`` is the docs base to read pages from (or a callable
    giving it, called only when a page is read); ``KIE_DOCS_URL`` or https://docs.kie.ai otherwise.
    A value that is not JSON is refused whatever ``validate`` says: no request could carry it."""
    _check_json(input)
    if validate is False:
        return CheckedInput(dict(input))
    if validate not in (True, "strict"):
        raise KieInputError("validate", f"must be True, 'strict' or False, got {validate!r}")
    known = entry(model)
    if known is None:
        _warn_unknown(model)
        return CheckedInput(dict(input))
    if known.gone:
        _warn_gone(model, known.last_seen)
    checked, refusals = known.checked(input, files=files)
    if not refusals:
        return CheckedInput(checked, known)
    if validate == "strict":
        raise refusals[0].error(known, "; validate='strict' refuses on the provider's catalog alone")
    from airflow_provider_kie import pages  # only when the catalog refuses: never on the happy path

    open_ = [r for r in refusals if not pages.accepted_before(model, r.key)]
    if not open_:
        return CheckedInput(checked, known)
    try:
        current = pages.current_entry(known, docs_url() if callable(docs_url) else docs_url)
    except pages.PageUnreadable as why:
        for refusal in open_:
            _warn_unconfirmed(model, refusal.field, refusal.reason, known.as_of, str(why))
        return CheckedInput(checked, known, tuple(r.key for r in open_))
    checked, refusals = current.checked(input, files=files)
    refused = [r for r in refusals if not pages.accepted_before(model, r.key)]
    if refused:
        raise refused[0].error(current)
    log.info(
        "Kie's current page of %s takes what the provider's catalog of %s refused (%s)",
        model,
        known.as_of,
        ", ".join(f"input.{r.field}" for r in open_),
    )
    return CheckedInput(checked, current)


def _check_json(input: Any) -> None:
    """Refuse what no request could carry: a value JSON cannot encode (a file reference is uploaded
    and replaced by its URL first, so it passes)."""
    if not isinstance(input, Mapping):
        raise KieInputError(
            "input", f"must be a dict of the model's input fields, got {type(input).__name__}"
        )

    def encode(value: Any) -> Any:
        if is_file_ref(value):
            return str(value)
        raise TypeError(f"{type(value).__name__} {value!r}")

    for name, value in input.items():
        try:
            json.dumps(value, default=encode)
        except (TypeError, ValueError) as error:
            raise KieInputError(name, f"is not a JSON value, so no request can carry it: {error}") from None


def validate_input(
    model: str, input: Mapping[str, Any], *, files: bool = False, validate: Validate = True
) -> dict[str, Any]:
    """``input`` checked as :func:`check_input` checks it."""
    return check_input(model, input, files=files, validate=validate).input


@dataclass(frozen=True)
class CheckedBody:
    """A createTask body, validated, with what :class:`CheckedInput` says of its input."""

    body: dict[str, Any]
    checked: CheckedInput


def checked_body(
    model: str,
    input: Mapping[str, Any],
    callback_url: str | None = None,
    *,
    files: bool = False,
    validate: Validate = True,
    docs_url: Callable[[], str | None] | str | None = None,
) -> CheckedBody:
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
    checked = check_input(model, input, files=files, validate=validate, docs_url=docs_url)
    body["input"] = checked.input
    return CheckedBody(body, checked)


def create_task_body(model: str, input: Mapping[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`checked_body`'s body alone."""
    return checked_body(model, input, *args, **kwargs).body


def accepted(model: str | None, keys: Sequence[str]) -> None:
    """Kie created a task from input that sent these unconfirmed values (:attr:`Refusal.key`): they count
    as allowed for ``model`` from now on (in this process and in the page cache's folder)."""
    if model and keys:
        from airflow_provider_kie import pages

        pages.remember_accepted(model, list(keys))


def file_inputs(model: str, model_input: Mapping[str, Any]) -> list[Any]:
    """Every item of ``model_input``'s file fields (URLs, paths, URIs, ObjectStoragePaths), as given."""
    known = entry(model)
    fields = known.file_fields if known else ()
    return [item for f in fields for _, item in f.items(model_input.get(f.name))]


def rejected_hint(model: str) -> str:
    """What to add to Kie's refusal of a catalog model's input: the catalog may be out of date."""
    known = entry(model)
    if known is None:
        return ""
    return (
        f"; {model} is in the provider's catalog ({known.provenance}): Kie refused this input, so "
        "check the model's current page"
    )
