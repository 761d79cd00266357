"""Results copied from Kie to Airflow object storage before the task succeeds, so they outlive Kie's URLs.

Each result file is streamed (never whole in memory) to a hidden partial name beside its final name,
then renamed: a reader never sees half a file under ``{kie_task_id}-{n}.{ext}``, and the next copy of
the same result removes what a process killed mid-file left. A manifest
``{kie_task_id}.json`` beside the files says where each came from and, under ``files``, its kind
(image, video, audio), content type, size and SHA-256. Copying again is harmless: a file
already stored under its final name is kept, so a retry after a crash mid-copy finishes the copy.
Result URLs are fetched without the API key: they are on Kie's file hosts, not its API.

One implementation serves both places: the download is asynchronous (aiohttp) and every file
operation runs in a thread, so in the triggerer (:func:`persist_async`, at most
:data:`TRIGGERER_COPIES` copies at a time) the event loop that waits for every other task never blocks
on a copy; on a worker :func:`persist` runs the same coroutine to completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
import weakref
from typing import Any

from airflow_provider_kie import media
from airflow_provider_kie.api import KieTask
from airflow_provider_kie.events import Provenance
from airflow_provider_kie.exceptions import KieInputError, KieStorageError
from airflow_provider_kie.hooks import sessions

CHUNK_BYTES = 1024 * 1024
TRIGGERER_COPIES = 4
DOWNLOAD_TIMEOUT = 60.0


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


def writable_folder(output_path: Any) -> Any:
    """``output_path`` as a checked ObjectStoragePath (see :func:`check_writable`), or None if None."""
    if output_path is None:
        return None
    folder = as_path(output_path)
    check_writable(folder)
    return folder


def check_writable(folder: Any) -> None:
    """Fail before any request if ``folder`` cannot take files (missing bucket, no permission)."""
    probe = folder / f".kie-write-check-{uuid.uuid4().hex}"
    try:
        make_folder(folder)
        with probe.open("wb") as handle:
            handle.write(b"")
        probe.unlink()
    except Exception as error:
        raise KieInputError("output_path", f"{folder} is not writable: {type(error).__name__}: {error}")


def make_folder(folder: Any) -> None:
    """Make a local folder; object stores have no folders to make (and a bucket is not made here)."""
    if folder.protocol in ("file", "local"):
        folder.mkdir(parents=True, exist_ok=True)


def extension(content_type: str | None, url: str) -> str:
    """The file extension from the reply's content type, else from the URL, else ``bin``."""
    known = media.extension(content_type)
    if known:
        return known
    name = url.split("?")[0].rsplit("/", 1)[-1]
    suffix = name.rpartition(".")[2].lower() if "." in name else ""
    return suffix if suffix.isalnum() and len(suffix) <= 5 else "bin"


def persist(task: KieTask, folder: Any, provenance: Provenance | None = None) -> list[str]:
    """Copy every result of ``task`` into ``folder`` and write its manifest; return the stored URIs.
    ``provenance`` goes into the manifest (``input`` as sent to Kie, ``sources`` as the task was given)."""
    return asyncio.run(_persist(task, folder, provenance))


_copy_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


async def persist_async(task: KieTask, output_path: str, provenance: Provenance | None = None) -> list[str]:
    """:func:`persist` in a running event loop (the triggerer's), at most :data:`TRIGGERER_COPIES` at a
    time: the download is asynchronous and every file operation runs in a thread."""
    loop = asyncio.get_running_loop()
    slots = _copy_slots.setdefault(loop, asyncio.Semaphore(TRIGGERER_COPIES))
    async with slots:
        return await _persist(task, await asyncio.to_thread(as_path, output_path), provenance)


async def _persist(task: KieTask, folder: Any, provenance: Provenance | None) -> list[str]:
    aiohttp = await sessions.load_aiohttp()
    try:
        await asyncio.to_thread(make_folder, folder)
    except OSError as error:
        raise KieStorageError(f"could not make {folder}: {type(error).__name__}: {error}", operation="store")
    files: list[dict[str, Any]] = []
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=DOWNLOAD_TIMEOUT, sock_read=DOWNLOAD_TIMEOUT)
    # One session for the loop's copies (no key: Kie's file hosts, not its API); a session per copy
    # would promote its objects to the oldest GC generation and bring on full collections, which
    # pause the whole loop.
    session = sessions.lease_async_session(
        ("result downloads",), lambda: aiohttp.ClientSession(timeout=timeout)
    )
    try:
        for n, url in enumerate(task.result_urls):
            stem = f"{task.kie_task_id}-{n}"
            found = await asyncio.to_thread(_stored_before, folder, stem)
            files.append(
                await asyncio.to_thread(_described, found, url)
                if found
                else await _download(session, url, folder, stem)
            )
    finally:
        await sessions.release_async_session(session)
    if task.result_object is not None:  # data, not files (a transcript): stored as JSON beside them
        files.append(await asyncio.to_thread(_write_object, folder / f"{task.kie_task_id}-object.json", task))
    stored = [file["uri"] for file in files]
    manifest = {
        "kie_task_id": task.kie_task_id,
        "model": task.model,
        "input": provenance.input if provenance else None,
        "sources": list(provenance.sources) if provenance else [],
        "credits_consumed": None if task.credits_consumed is None else float(task.credits_consumed),
        "kie_urls": list(task.result_urls),
        "stored": stored,
        "files": files,
        "created_at": task.created_at.isoformat() if task.created_at else None,
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
        "stored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    content = json.dumps(manifest, indent=2).encode()
    await asyncio.to_thread(_write_whole, folder / f"{task.kie_task_id}.json", content)
    return stored


def _stored_before(folder: Any, stem: str) -> Any:
    """The result stored by an earlier try (renamed into place only once complete), else None; and
    what a copy killed mid-file left is removed."""
    done = [p for p in folder.glob(f"{stem}.*") if not p.name.startswith(".")]
    if done:
        return done[0]
    _remove_partials(folder, f"{stem}.*")
    return None


def _remove_partials(folder: Any, name: str) -> None:
    """Remove what copies killed while writing ``name`` (a glob) left."""
    for leftover in folder.glob(f".{name}.partial-*"):
        with contextlib.suppress(Exception):
            leftover.unlink()


async def _download(session: Any, url: str, folder: Any, stem: str) -> dict[str, Any]:
    import aiohttp

    try:
        async with session.get(url) as response:
            response.raise_for_status()
            content_type = media_type(response.headers.get("Content-Type"), url)
            target = folder / f"{stem}.{extension(content_type, url)}"
            file = await asyncio.to_thread(AtomicFile, target)
            try:
                buffer = bytearray()
                async for data in response.content.iter_chunked(CHUNK_BYTES):
                    buffer += data
                    if len(buffer) >= CHUNK_BYTES:
                        await asyncio.to_thread(file.write, bytes(buffer))
                        buffer.clear()
                await asyncio.to_thread(file.write, bytes(buffer))
                await asyncio.to_thread(file.commit)
            except BaseException:
                await asyncio.to_thread(file.discard)
                raise
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        raise KieStorageError(f"could not download {url}: {type(error).__name__}: {error}", operation="store")
    except OSError as error:
        raise KieStorageError(f"could not store {url}: {type(error).__name__}: {error}", operation="store")
    return file_entry(target, url, content_type, file.size, file.sha256.hexdigest())


def file_entry(target: Any, url: str | None, content_type: str, size: int, sha256: str) -> dict[str, Any]:
    """A stored result as its manifest lists it."""
    return {
        "uri": str(target),
        "kie_url": url,
        "kind": media.kind(content_type),
        "content_type": content_type,
        "bytes": size,
        "sha256": sha256,
    }


def _write_object(target: Any, task: KieTask) -> dict[str, Any]:
    content = json.dumps(task.result_object, indent=2).encode()
    _write_whole(target, content)
    return file_entry(target, None, "application/json", len(content), hashlib.sha256(content).hexdigest())


def _described(target: Any, url: str) -> dict[str, Any]:
    """A result an earlier try stored, described as :func:`_download` describes a new one."""
    digest, size = hashlib.sha256(), 0
    with target.open("rb") as handle:
        while data := handle.read(CHUNK_BYTES):
            digest.update(data)
            size += len(data)
    return file_entry(target, url, media_type(None, str(target)), size, digest.hexdigest())


def media_type(content_type: str | None, url: str) -> str:
    """The reply's media type, else the one the URL's extension names, else a binary file's."""
    given = media.canonical(content_type)
    if given and given != "application/octet-stream":
        return given
    return media.of_name(url) or "application/octet-stream"


def _write_whole(target: Any, content: bytes) -> None:
    _remove_partials(target.parent, target.name)  # what a copy killed mid-write left
    file = AtomicFile(target)
    try:
        file.write(content)
        file.commit()
    except BaseException:
        file.discard()
        raise


class AtomicFile:
    """A file written under a hidden partial name beside ``target`` and renamed into place by
    :meth:`commit`; a failure to open, write or rename is a :class:`KieStorageError`."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.partial = target.parent / f".{target.name}.partial-{uuid.uuid4().hex}"
        self.sha256 = hashlib.sha256()
        self.size = 0
        with self._storing():
            self.handle = self.partial.open("wb")

    def write(self, data: bytes) -> None:
        with self._storing():
            self.handle.write(data)
        self.sha256.update(data)
        self.size += len(data)

    def commit(self) -> None:
        with self._storing():
            self.handle.close()
            self.partial.rename(self.target)

    def discard(self) -> None:
        with contextlib.suppress(Exception):  # nothing was written, or the store is gone
            self.handle.close()
        with contextlib.suppress(Exception):
            self.partial.unlink()

    @contextlib.contextmanager
    def _storing(self) -> Any:
        try:
            yield
        except Exception as error:
            raise KieStorageError(
                f"could not store {self.target}: {type(error).__name__}: {error}", operation="store"
            )
