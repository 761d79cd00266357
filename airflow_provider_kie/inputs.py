"""File inputs from anywhere: local paths, ``file://`` and object-storage URIs, ``ObjectStoragePath``.

Before any request each file is read through Airflow's object storage and checked (it exists, its size
is within the model's limit, its type, sniffed from its content, is one the model takes); then each
distinct content is uploaded to Kie's File Upload API once and its URL replaces it in the input.

Uploads are shared by every process of a machine: a small cache folder maps a content hash to the URL
of its upload (a public URL, nothing secret), and a lock per hash makes concurrent tasks wait for one
upload rather than each making their own. An upload older than ``REUSE_FOR`` is never reused: Kie
deletes uploaded files after about a day.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from airflow_provider_kie import media, models
from airflow_provider_kie.events import Job
from airflow_provider_kie.exceptions import KieInputError

UPLOAD_PATH = "airflow-inputs"
REUSE_FOR = 12 * 3600.0
# Kie's File Upload API recommends at most 100 MB a file; a field whose limit the catalog does not state
# gets that one, which also bounds what a task reads into memory.
DEFAULT_MAX_MB = 100
log = logging.getLogger(__name__)


def sniff(content: bytes) -> str | None:
    """The media type of a file from its first bytes (the image, video and audio types Kie takes), or None."""
    head = content[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF"):
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}.get(head[8:12])
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return (
            "video/quicktime"
            if brand == b"qt  "
            else "audio/mp4"
            if brand.startswith(b"M4A")
            else "video/mp4"
        )
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: the document type says which
        return "video/webm" if b"webm" in content[:64] else "video/x-matroska"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "audio/mpeg"  # an ID3 tag, or an MPEG audio layer III frame
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "audio/aac"  # an ADTS frame
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "audio/x-ms-wma"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def file_ref(item: Any) -> Any:
    """``item`` as an ObjectStoragePath if it names a file to upload; None for an http(s) URL."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if isinstance(item, ObjectStoragePath):
        return item
    if not models.is_file_ref(item):
        return None
    if item.startswith("/"):
        return ObjectStoragePath(f"file://{item}")
    return ObjectStoragePath(item)


@dataclass(frozen=True)
class LocalFile:
    """A file input read and checked: where it goes in the input (``index`` None: the field takes one
    file, not a list), its content, type and hash."""

    field: str
    index: int | None
    source: str
    content: bytes
    media_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def read_files(model_input: dict[str, Any], model: models.KieModel | None) -> list[LocalFile]:
    """Every file input of ``model_input``, read and checked; raises KieInputError naming the input."""
    files = []
    for field in model.file_fields if model else ():
        for index, item in field.items(model_input.get(field.name)):
            ref = file_ref(item)
            if ref is not None:
                files.append(_read(field, index, ref))
    return files


def _read(field: models.Field, index: int | None, ref: Any) -> LocalFile:
    name = field.name
    where = f"item {index} ({ref})" if index is not None else str(ref)
    max_bytes = field.max_bytes or DEFAULT_MAX_MB * 1024 * 1024
    try:
        with ref.open("rb") as handle:
            content = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise KieInputError(name, f"{where} does not exist")
    except Exception as error:
        raise KieInputError(name, f"{where} cannot be read: {type(error).__name__}: {error}")
    if len(content) > max_bytes:
        raise KieInputError(
            name, f"{where} is larger than {max_bytes / (1024 * 1024):g} MB, the field's limit"
        )
    media_type = sniff(content)
    accepted = {media.canonical(t) for t in field.accept}
    if accepted and media_type not in accepted:
        allowed = ", ".join(sorted(accepted))
        raise KieInputError(
            name, f"{where} is {media_type or 'of an unknown type'} by its content; allowed: {allowed}"
        )
    kind = field.file if field.file in ("image", "video", "audio") else None
    if not accepted and kind and not (media_type or "").startswith(kind + "/"):
        raise KieInputError(name, f"{where} is not {kind} by its content ({media_type or 'unknown type'})")
    return LocalFile(name, index, str(ref), content, media_type or "application/octet-stream")


def upload_files(
    model_input: dict[str, Any],
    files: list[LocalFile],
    upload: Callable[[bytes, str], str],
    *,
    upload_host: str,
) -> dict[str, Any]:
    """``model_input`` with every file replaced by the URL of its upload (one upload per content)."""
    if not files:
        return model_input
    cache = UploadCache(upload_host)
    result = {name: list(value) if isinstance(value, list) else value for name, value in model_input.items()}
    for file in files:
        name = f"{file.sha256[:32]}.{media.extension(file.media_type) or 'bin'}"
        made: list[str] = []
        url = cache.url_for(file.sha256, lambda: _noted(made, upload(file.content, name)))  # noqa: B023
        if file.index is None:
            result[file.field] = url
        else:
            result[file.field][file.index] = url
        if made:
            log.info("Uploaded %s to Kie (%d bytes): %s", file.source, len(file.content), url)
        else:
            log.info("Reusing a recent upload of the same content as %s: %s", file.source, url)
    return result


def _noted(made: list[str], url: str) -> str:
    made.append(url)
    return url


# A folder every task process of the machine can write; point KIE_UPLOAD_CACHE_DIR at a folder shared
# by several machines (a network file system with working locks) to share uploads between them too.
CACHE_DIR = Path(
    os.environ.get("KIE_UPLOAD_CACHE_DIR") or Path(tempfile.gettempdir()) / "airflow-provider-kie" / "uploads"
)


class UploadCache:
    """Content hash -> URL of a recent upload to ``upload_host``, shared by the processes of this
    machine through files in ``CACHE_DIR``."""

    def __init__(self, upload_host: str, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder or CACHE_DIR) / hashlib.sha256(upload_host.encode()).hexdigest()[:16]

    def url_for(self, sha256: str, upload: Callable[[], str]) -> str:
        """The URL of a recent upload of this content, or of a new one made by ``upload``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = self.folder / f"{sha256}.json"
        with self._locked(sha256):
            with contextlib.suppress(OSError, ValueError, KeyError):
                cached = json.loads(entry.read_text())
                if time.time() - float(cached["uploaded_at"]) < REUSE_FOR:
                    return str(cached["url"])
            url = upload()
            partial = entry.with_name(f".{entry.name}.{os.getpid()}")
            partial.write_text(json.dumps({"url": url, "uploaded_at": time.time()}))
            partial.replace(entry)
            return url

    @contextlib.contextmanager
    def _locked(self, sha256: str) -> Iterator[None]:
        with open(self.folder / f"{sha256}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- jobs from fields


@dataclass(frozen=True)
class InputSpec:
    """How an operator's rendered fields make its jobs' inputs. ``items`` names the field that holds one
    input per job (None: one job, its input the field ``input``, or the typed ``fields``); ``fields``
    are typed fields every input takes unless it gives its own (None: omitted); a plain string item
    fills the ``text`` field. The operator on a worker and the triggerer that starts a task both use it."""

    items: str | None = None
    fields: tuple[str, ...] = ()
    text: str | None = None

    @property
    def reads(self) -> tuple[str, ...]:
        """The operator's fields it reads."""
        if self.items is None and not self.fields:
            return ("input",)
        return (*((self.items,) if self.items else ()), *self.fields)

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "fields": list(self.fields), "text": self.text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        return cls(data.get("items"), tuple(data.get("fields") or ()), data.get("text"))


def expand(spec: InputSpec, values: Mapping[str, Any]) -> list[Any]:
    """The jobs' inputs from the fields' rendered ``values``."""
    if spec.items is None:
        return [dict(values) if spec.fields else values.get("input")]
    given = values.get(spec.items)
    if isinstance(given, (str, bytes, Mapping)) or not isinstance(given, Sequence):
        raise KieInputError(spec.items, f"must be a list of items, got {given!r}")
    defaults = {name: values[name] for name in spec.fields if values.get(name) is not None}
    return [
        {**defaults, spec.text: item}
        if isinstance(item, str) and spec.text
        else {**defaults, **item}
        if isinstance(item, Mapping)
        else item
        for item in given
    ]


@dataclass(frozen=True)
class Prepared:
    """One job made and checked before any request: its job (body validated, files as given), and its
    file inputs read and checked, to upload."""

    job: Job
    files: tuple[LocalFile, ...] = ()

    def uploaded(self, upload: Callable[[bytes, str], str], upload_host: str) -> Job:
        """The job with its files uploaded (once per content) and replaced by their URLs."""
        if not self.files:
            return self.job
        body = {
            **self.job.body,
            "input": upload_files(self.job.body["input"], list(self.files), upload, upload_host=upload_host),
        }
        return replace(self.job, body=body)


def prepare(
    model: str,
    given: Sequence[Any],
    *,
    callback_url: str | None,
    validate: models.Validate,
    docs_url: Callable[[], str | None] | str | None = None,
    parameter: str = "input",
    single: bool = True,
) -> list[Prepared]:
    """Each input validated (a catalog model's by its entry, and its current page), its file inputs read
    and checked: a bad one raises :class:`KieInputError` naming it, before any request."""
    prepared = []
    for index, model_input in enumerate(given):
        where = parameter if single else f"{parameter}[{index}]"
        if not isinstance(model_input, Mapping):
            raise KieInputError(where, f"must be a dict of the model's input fields, got {model_input!r}")
        try:
            checked = models.checked_body(
                model, model_input, callback_url, files=True, validate=validate, docs_url=docs_url
            )
            files = read_files(checked.body["input"], checked.checked.entry)
        except KieInputError as error:
            if single:
                raise
            raise KieInputError(f"{where}.{error.parameter}", str(error).split(": ", 1)[-1]) from None
        sources = tuple(str(ref) for ref in models.file_inputs(model, checked.body["input"]))
        prepared.append(Prepared(Job(checked.body, sources, checked.checked.unconfirmed), tuple(files)))
    return prepared


def worker_reason(
    spec: InputSpec, values: Mapping[str, Any], model: str, *, try_number: int | None = None
) -> str | None:
    """Why a task whose fields have these ``values`` needs a worker to start (an argument from an upstream
    task, files to read and upload, a retry to resume), or None: the triggerer can start it. The one
    place that decides it, for the operator (its fields as written) and the triggerer (as rendered)."""
    if try_number is not None and try_number > 1:
        return "a retry resumes the Kie tasks of an earlier try, which only a worker can look up"
    if _holds(values, _is_xcom_arg):
        return "an argument comes from an upstream task, which Airflow resolves only on a worker"
    try:
        given = expand(spec, values)
    except KieInputError:
        return None  # the triggerer refuses it as a worker would
    files = [item for each in given if isinstance(each, Mapping) for item in models.file_inputs(model, each)]
    if any(not (isinstance(f, str) and "{{" in f) and models.is_file_ref(f) for f in files):
        return "its input names files, which a worker reads and uploads"
    return None


def _holds(value: Any, test: Callable[[Any], bool]) -> bool:
    if test(value):
        return True
    if isinstance(value, Mapping):
        return any(_holds(v, test) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds(v, test) for v in value)
    return False


def _is_xcom_arg(value: Any) -> bool:
    from airflow.providers.common.compat.sdk import XComArg

    return isinstance(value, XComArg)
