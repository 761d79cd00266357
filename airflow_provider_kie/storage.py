"""Results copied from Kie to Airflow object storage before the task succeeds, so they outlive Kie's URLs.

Each result file is streamed (never whole in memory) to a hidden partial name beside its final name,
then renamed: a reader never sees half a file under ``{kie_task_id}-{n}.{ext}``, and the next copy of
the same result removes what a process killed mid-file left. A manifest
``{kie_task_id}.json`` beside the files says where each came from. Copying again is harmless: a file
already stored under its final name is kept, so a retry after a crash mid-copy finishes the copy.
Result URLs are fetched without the API key: they are on Kie's file hosts, not its API.

In the triggerer, :func:`persist_async` runs the same copy in a thread, at most
:data:`TRIGGERER_COPIES` at a time: the event loop that waits for every other task never does file or
network I/O for a copy, and a hundred results finishing together do not take a hundred threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import Any

from airflow_provider_kie.api import KieTask
from airflow_provider_kie.exceptions import KieError, KieInputError, KieStorageError

CHUNK_BYTES = 1024 * 1024
TRIGGERER_COPIES = 4
DOWNLOAD_TIMEOUT = 60.0
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/webm": "webm",
}


def as_path(output_path: Any, conn_id: str | None = None) -> Any:
    """``output_path`` (a URI string, a local path or an ObjectStoragePath) as an ObjectStoragePath."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    if isinstance(output_path, ObjectStoragePath):
        return output_path
    if not isinstance(output_path, str) or not output_path.strip():
        raise KieInputError(
            "output_path",
            f"must be a folder URI (file:///…, s3://…) or an ObjectStoragePath, got {output_path!r}",
        )
    text = output_path.strip()
    if "://" not in text:
        if not text.startswith("/"):
            raise KieInputError("output_path", f"a local folder must be an absolute path, got {text!r}")
        text = f"file://{text}"
    return ObjectStoragePath(text, conn_id=conn_id) if conn_id else ObjectStoragePath(text)


def check_writable(folder: Any) -> None:
    """Fail before any request if ``folder`` cannot take files (missing bucket, no permission)."""
    probe = folder / f".kie-write-check-{uuid.uuid4().hex}"
    try:
        if folder.protocol in ("file", "local"):  # object stores have no folders to make (nor buckets)
            folder.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as handle:
            handle.write(b"")
        probe.unlink()
    except Exception as error:
        raise KieInputError("output_path", f"{folder} is not writable: {type(error).__name__}: {error}")


def extension(content_type: str | None, url: str) -> str:
    """The file extension from the reply's content type, else from the URL, else ``bin``."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in EXTENSIONS:
        return EXTENSIONS[media]
    name = url.split("?")[0].rsplit("/", 1)[-1]
    suffix = name.rpartition(".")[2].lower() if "." in name else ""
    return suffix if suffix.isalnum() and len(suffix) <= 5 else "bin"


def persist(task: KieTask, folder: Any, provenance: Mapping[str, Any] | None = None) -> list[str]:
    """Copy every result of ``task`` into ``folder`` and write its manifest; return the stored URIs.

    ``provenance`` goes into the manifest: ``input``, the model input as sent to Kie (uploaded files as
    their URLs), and ``sources``, the input files as the task was given them (paths, URIs, URLs).
    """
    import requests

    stored = []
    with requests.Session() as session:
        for n, url in enumerate(task.result_urls):
            stored.append(str(_copy(session, url, folder, f"{task.kie_task_id}-{n}")))
    manifest = {
        "kie_task_id": task.kie_task_id,
        "model": task.model,
        "input": (provenance or {}).get("input"),
        "sources": (provenance or {}).get("sources", []),
        "credits_consumed": None if task.credits_consumed is None else float(task.credits_consumed),
        "kie_urls": list(task.result_urls),
        "stored": stored,
        "created_at": task.created_at.isoformat() if task.created_at else None,
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
        "stored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_atomically(folder / f"{task.kie_task_id}.json", [json.dumps(manifest, indent=2).encode()])
    return stored


_copy_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


async def persist_async(
    task: KieTask, output_path: str, provenance: Mapping[str, Any] | None = None
) -> list[str]:
    """:func:`persist` off the event loop, at most :data:`TRIGGERER_COPIES` copies at a time."""
    loop = asyncio.get_running_loop()
    slots = _copy_slots.setdefault(loop, asyncio.Semaphore(TRIGGERER_COPIES))
    async with slots:
        return await asyncio.to_thread(lambda: persist(task, as_path(output_path), provenance))


def _copy(session: Any, url: str, folder: Any, stem: str) -> Any:
    import requests

    done = [p for p in folder.glob(f"{stem}.*") if not p.name.startswith(".")]
    if done:  # stored by an earlier try: renamed into place only once complete
        return done[0]
    for leftover in folder.glob(f".{stem}.*.partial-*"):  # from a copy killed mid-file
        with contextlib.suppress(Exception):
            leftover.unlink()
    try:
        with session.get(url, stream=True, timeout=DOWNLOAD_TIMEOUT) as response:
            response.raise_for_status()
            target = folder / f"{stem}.{extension(response.headers.get('Content-Type'), url)}"
            _write_atomically(target, response.iter_content(CHUNK_BYTES))
    except requests.RequestException as error:
        raise KieStorageError(f"could not download {url}: {type(error).__name__}: {error}", operation="store")
    return target


def _write_atomically(target: Any, chunks: Any) -> None:
    partial = target.parent / f".{target.name}.partial-{uuid.uuid4().hex}"
    try:
        with partial.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        partial.rename(target)
    except KieError:
        raise
    except Exception as error:
        with contextlib.suppress(Exception):  # nothing was written, or the store is gone
            partial.unlink()
        raise KieStorageError(f"could not store {target}: {type(error).__name__}: {error}", operation="store")
