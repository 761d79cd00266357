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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_kie import models
from airflow_provider_kie.exceptions import KieInputError

UPLOAD_PATH = "airflow-inputs"
REUSE_FOR = 12 * 3600.0
# Kie's File Upload API recommends at most 100 MB a file; a field whose limit the catalog does not state
# gets that one, which also bounds what a task reads into memory.
DEFAULT_MAX_MB = 100
log = logging.getLogger(__name__)
# The types Kie's pages name, by file extension of the upload, and the other names pages give them.
EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif",
    "video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm", "video/x-matroska": "mkv",
    "video/x-msvideo": "avi", "audio/mpeg": "mp3", "audio/wav": "wav", "audio/aac": "aac",
    "audio/ogg": "ogg", "audio/mp4": "m4a", "audio/flac": "flac", "audio/x-ms-wma": "wma",
    "application/pdf": "pdf",
}  # fmt: skip
ALIASES = {
    "image/jpg": "image/jpeg", "audio/mp3": "audio/mpeg", "audio/x-wav": "audio/wav",
    "audio/m4a": "audio/mp4", "audio/x-m4a": "audio/mp4", "video/avi": "video/x-msvideo",
}  # fmt: skip


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
        value = model_input.get(field.name)
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, item in items:
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
    accepted = {ALIASES.get(t, t) for t in field.accept}
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
        name = f"{file.sha256[:32]}.{EXTENSIONS.get(file.media_type, 'bin')}"
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
