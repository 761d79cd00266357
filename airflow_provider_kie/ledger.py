"""What a task's jobs sent, kept as it happens so that no run of them pays twice and none loses what was
paid for; the ledger alone reads and writes where that is kept.

The jobs of a task may run twice at once in triggerers (Airflow's HA hand-over), again after a restart,
or on a worker that is killed and retried. Each run reads the :class:`Ledger` first and writes it as
each createTask leaves and as each reply comes back, in XCom (a triggerer) or the task state store (a
worker):

- ``kie_jobs_owner`` = ``{"by", "at", "chunks", "released"}``: the run that may create (an election,
  since XCom has no compare-and-set: claim, let another claim land, read back), its heartbeat, and how
  many chunks it wrote. Another run waits while the owner is live, and takes over once it released the
  jobs (it ended, or was cancelled after keeping the ids it had received) or stopped heart-beating.
- ``kie_jobs.<k>`` = ``{"jobs": {index: job}, "sent": {index: run}}`` for jobs ``k * CHUNK`` to
  ``(k + 1) * CHUNK - 1``: written only by the owner, so a write costs O(CHUNK) whatever the number.
- ``kie_jobs`` = the whole :class:`~airflow_provider_kie.events.JobRecord`, written when a run ends:
  what a retry starts from (the chunks, then, are released).

A job is marked sent after the key's limiter let its request go and before it leaves; a run that takes
over waits for no id of a released or stopped owner: a mark without an id is an ambiguous create.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_kie.events import JobRecord, JobRef

RECORD_KEY = "kie_jobs"
OWNER_KEY = "kie_jobs_owner"
#: Jobs per chunk of the record: the bytes one write costs, whatever the number of jobs.
CHUNK = 50
#: Where a single job's Kie task id is published as soon as it exists, for users (as 0.1.0 did).
TASK_ID_KEY = "kie_task_id"
#: What 0.1.0 also kept, read and never written: the job reference in the task state store, and in XCom
#: the claim of a create (epoch seconds, written before it left) and the task's deadline.
LEGACY_STORE_KEY, LEGACY_CREATE_SENT, LEGACY_DEADLINE = "kie_task", "kie_create_sent", "kie_task_deadline"

#: How long a run lets another run's claim land before it reads the claim back (XCom offers no
#: compare-and-set); also how often it then looks again.
CLAIM_SETTLE_SECONDS = 1.0
#: How long after its last sign of life (a heartbeat, or a create marked sent) a run that has not ended
#: may still be sending: its triggerer is then taken to have stopped.
CLAIM_LIVE_SECONDS = 60.0


def heartbeat_seconds() -> float:
    """How often the owner says it is alive; and, by its own clock, how long it trusts its ownership
    without reading it back (a paused process, on waking, reads it before it sends anything): well
    within the time another run waits for it."""
    return CLAIM_LIVE_SECONDS / 6


Load = Callable[[str], Awaitable[Any]]
Save = Callable[[str, Any], Awaitable[bool]]


def chunk_key(chunk: int) -> str:
    return f"{RECORD_KEY}.{chunk}"


def chunk_of(index: int) -> int:
    return index // CHUNK


class Superseded(Exception):
    """Another run owns the jobs now: this one sends nothing more."""


class _Chunk:
    """One chunk as its owner keeps it, written with coalescing: changes made while a write is in
    flight go out together in the next one."""

    def __init__(self, data: Mapping[str, Any] | None) -> None:
        data = data or {}
        self.jobs: dict[str, dict[str, Any]] = dict(data.get("jobs") or {})
        self.sent: dict[str, str] = dict(data.get("sent") or {})
        self.version = 0
        self.written = 0
        self.lock = asyncio.Lock()

    def to_dict(self) -> dict[str, Any]:
        return {"jobs": dict(self.jobs), "sent": dict(self.sent)}

    def record(self) -> JobRecord:
        return JobRecord(
            {int(i): JobRef.from_dict(job) for i, job in self.jobs.items()}, {int(i) for i in self.sent}
        )


class Ledger:
    """The record of a task's jobs in a key-value store (the task instance's XCom in a triggerer, the task
    state store on a worker), read by :meth:`open` and kept by the owner as jobs leave and come back.

    ``load`` returns None for a key never written; ``save`` returns False where nothing can be kept (a
    trigger run without a task instance), which makes every run the owner of a record in memory only.
    ``elect=False`` (a worker's task state store, which no other run shares) neither waits for another
    run nor holds an election. ``legacy`` reads what 0.1.0 kept (when no owner was ever written);
    ``on_created`` is told each new id after it is kept (a single task's public XCom ``kie_task_id``).
    """

    def __init__(
        self,
        load: Load,
        save: Save,
        *,
        log: Any,
        elect: bool = True,
        legacy: Callable[[], Awaitable[JobRecord]] | None = None,
        on_created: Callable[[JobRef], Awaitable[Any]] | None = None,
    ) -> None:
        self.load = load
        self.save = save
        self.log = log
        self.elect = elect
        self.legacy = legacy
        self.on_created = on_created
        self.by = uuid.uuid4().hex
        self.chunks: dict[int, _Chunk] = {}
        self.count = 0  # chunks written, by this run or those before it
        self.confirmed = 0.0  # monotonic time this run last knew it owned the jobs
        self.stopped = False
        self.durable = True
        self.owner = False  # this run claimed the jobs and has not released them
        self._to_create: set[int] | None = None  # what this run may still create, when known
        self.writes = 0
        self._heartbeat: asyncio.Task[None] | None = None

    async def open(self, needed: Sequence[int] | None = None) -> JobRecord:
        """Become the jobs' owner (waiting while another live run owns them); what earlier runs sent.

        ``needed`` are the jobs this run would create (None: not known). A run that finds them all
        created follows a live owner instead of waiting for it (a restarted triggerer resumes at once),
        and one that needs none reads nothing; an owner releases the jobs as soon as they all exist."""
        if needed is not None and not needed:
            return JobRecord()  # only waits (a sensor's, a retry's): nothing to claim, nothing read
        owner = await self.load(OWNER_KEY)
        # What a 0.1.0 trigger still in flight across the upgrade kept.
        record = JobRecord() if owner is not None or self.legacy is None else await self.legacy()
        looked, announced = -heartbeat_seconds(), False
        while True:
            live = self.elect and _live_other(owner, self.by)
            chunks = int(owner.get("chunks") or 0) if isinstance(owner, Mapping) else 0
            if needed is not None and chunks and time.monotonic() - looked >= heartbeat_seconds():
                looked = time.monotonic()
                kept = record.merged(await self._read(chunks))
                if all(index in kept.jobs for index in needed):
                    return kept  # following: this run owns nothing, sends nothing, writes nothing
            if not live:
                # The chunks this run will write are counted in its claim: no owner write per new chunk.
                if await self._claim(max([chunks, *(chunk_of(i) + 1 for i in needed or ())])):
                    break
            else:
                if not announced:
                    announced = True
                    self.log.info(
                        "Another run of these jobs is creating them; waiting for it to hand over, or to "
                        "fall silent for %.0f s",
                        CLAIM_LIVE_SECONDS,
                    )
                await asyncio.sleep(CLAIM_SETTLE_SECONDS)
            owner = await self.load(OWNER_KEY)
        for k in range(chunks):  # what earlier runs kept
            self.chunks[k] = _Chunk(await self.load(chunk_key(k)))
            record = record.merged(self.chunks[k].record())
        self._to_create = None if needed is None else set(needed) - set(record.jobs)
        if self.durable and self.elect:
            self._heartbeat = asyncio.ensure_future(self._beat())
        return record

    async def _read(self, chunks: int) -> JobRecord:
        record = JobRecord()
        for k in range(chunks):
            record = record.merged(_Chunk(await self.load(chunk_key(k))).record())
        return record

    async def _claim(self, chunks: int) -> bool:
        self.count = chunks
        if not await self._save_owner():
            self.durable = False
            return True  # nowhere to keep a record: nobody else to agree with
        self.owner = True
        if self.elect:
            await asyncio.sleep(CLAIM_SETTLE_SECONDS)
            kept = await self.load(OWNER_KEY)
            if not (isinstance(kept, Mapping) and kept.get("by") == self.by):
                return False
        self.confirmed = time.monotonic()
        return True

    async def sending(self, index: int) -> None:
        """Job ``index``'s createTask is about to leave: mark it, unless this run no longer owns the jobs."""
        await self._still_owner()
        chunk = await self._chunk(chunk_of(index))
        chunk.sent[str(index)] = self.by
        await self._write(chunk_of(index))
        try:
            await self._still_owner()  # the process may have been paused while the mark was written
        except Superseded:
            # It never left: unmarked, so that close() (if this run still owns the jobs) writes it so.
            chunk.sent.pop(str(index), None)
            raise

    async def not_sent(self, index: int) -> None:
        """Answered without a task (a 429, a refused body): nothing of it exists at Kie."""
        chunk = await self._chunk(chunk_of(index))
        if chunk.sent.pop(str(index), None) is not None:
            await self._write(chunk_of(index))

    async def created(self, index: int, job: JobRef) -> None:
        chunk = await self._chunk(chunk_of(index))
        chunk.jobs[str(index)] = job.to_dict()
        chunk.sent.pop(str(index), None)
        await self._write(chunk_of(index))
        if self.on_created is not None:
            await self.on_created(job)
        if self._to_create is not None:
            self._to_create.discard(index)
        if self._to_create == set() and self.owner:
            await self.close()  # every job exists: nothing left to send, so no claim to keep alive

    def stop_sending(self) -> None:
        self.stopped = True

    def marked_sent(self, index: int) -> bool:
        """Whether job ``index``'s createTask was marked as leaving (so may have reached Kie)."""
        chunk = self.chunks.get(chunk_of(index))
        return chunk is not None and str(index) in chunk.sent

    async def close(self) -> None:
        """Hand the jobs over: every chunk written once more (a write of a paused run may have landed
        over it), then the owner released, so another run takes over at once."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        if not self.owner or not self.durable or not await self._owns():
            return
        self.owner = False
        for k in list(self.chunks):
            await self._write(k)
        await self._save_owner(released=True)
        self.log.info("Kie jobs: their record took %d writes in %d chunks", self.writes, len(self.chunks))

    async def _chunk(self, k: int) -> _Chunk:
        chunk = self.chunks.get(k)
        if chunk is None:
            chunk = self.chunks[k] = _Chunk(None)
            if k >= self.count:  # a new chunk: a run that reads the record must know to read it
                self.count = k + 1
                await self._save_owner()
        return chunk

    async def _write(self, k: int) -> None:
        chunk = self.chunks[k]
        chunk.version += 1
        wanted = chunk.version
        async with chunk.lock:
            if chunk.written >= wanted:  # a write that started after this change carried it
                return
            version, value = chunk.version, chunk.to_dict()
            await self.save(chunk_key(k), value)
            self.writes += 1
            chunk.written = version

    async def _still_owner(self) -> None:
        if self.stopped:
            raise Superseded()
        stale = self.durable and time.monotonic() - self.confirmed > heartbeat_seconds()
        if stale and not await self._owns():
            self.stopped = True
            self.log.warning("Another run took these jobs over; this one sends nothing more")
            raise Superseded()

    async def _owns(self) -> bool:
        owner = await self.load(OWNER_KEY)
        if isinstance(owner, Mapping) and owner.get("by") == self.by:
            self.confirmed = time.monotonic()
            return True
        return False

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(heartbeat_seconds())
            if not await self._owns():
                self.stopped = True
                return
            await self._save_owner()

    async def _save_owner(self, *, released: bool = False) -> bool:
        owner = {"by": self.by, "at": time.time(), "chunks": self.count, "released": released}
        self.writes += 1
        return await self.save(OWNER_KEY, owner)


def _live_other(owner: Any, mine: str) -> bool:
    """Whether ``owner`` is another run that may still send: not released, and alive lately."""
    if not isinstance(owner, Mapping) or owner.get("by") in (None, mine) or owner.get("released"):
        return False
    return time.time() - float(owner.get("at") or 0.0) < CLAIM_LIVE_SECONDS


@dataclass
class JobClaim:
    """The hook's :class:`~airflow_provider_kie.hooks.kie.SendClaim` for one job."""

    ledger: Ledger
    index: int

    async def sending(self) -> None:
        await self.ledger.sending(self.index)

    async def not_sent(self) -> None:
        await self.ledger.not_sent(self.index)


def in_memory() -> tuple[Load, Save]:
    """A store that keeps nothing (a trigger run without a task instance)."""

    async def load(key: str) -> Any:
        return None

    async def save(key: str, value: Any) -> bool:
        return False

    return load, save


def retry_record(get: Callable[[str], Any]) -> JobRecord:
    """What earlier tries of a task sent, read from its task state store: the record the last one kept as
    it ended, what a try killed before its end marked and kept (a mark with no id: an ambiguous create),
    and the job reference 0.1.0 kept."""
    record = JobRecord.from_dict(get(RECORD_KEY))
    owner = get(OWNER_KEY)
    for k in range(int(owner.get("chunks") or 0) if isinstance(owner, Mapping) else 0):
        record = record.merged(_Chunk(get(chunk_key(k))).record())
    legacy = get(LEGACY_STORE_KEY)
    if isinstance(legacy, Mapping) and not record.jobs and not record.sent:
        record = JobRecord({0: JobRef.from_dict(legacy)})
    return record


def keep_for_retry(put: Callable[[str, Any], Any], record: JobRecord) -> None:
    """Keep ``record`` as what a retry starts from, and release the chunks a run wrote."""
    put(RECORD_KEY, record.to_dict())
    put(OWNER_KEY, {"by": None, "chunks": 0, "released": True})


async def legacy_record(load: Load, timeout: float) -> JobRecord:
    """What a 0.1.0 trigger kept of its create in XCom: its claim (epoch seconds, written before the
    create left), then the task's id and deadline."""
    if await load(LEGACY_CREATE_SENT) is None:
        return JobRecord()
    kie_task_id = await load(TASK_ID_KEY)
    if not kie_task_id:
        return JobRecord({}, {0})  # sent, its reply never kept: an ambiguous create
    deadline = await load(LEGACY_DEADLINE) or time.time() + timeout
    return JobRecord({0: JobRef(str(kie_task_id), float(deadline))})


def created_kie_task_id(get: Callable[[str], Any], index: int) -> str | None:
    """The Kie task that job ``index`` created, as kept in the task instance's XCom (``get`` reads a key):
    its chunk, else for job 0 the public ``kie_task_id`` a single job publishes (from a worker too)."""
    chunk = get(chunk_key(chunk_of(index)))
    ref = _Chunk(chunk if isinstance(chunk, Mapping) else None).record().jobs.get(index)
    if ref is not None:
        return ref.kie_task_id
    published = get(TASK_ID_KEY) if index == 0 else None
    return published if isinstance(published, str) and published else None


def task_state_store(store: Any) -> tuple[Load, Save]:
    """``load`` and ``save`` over a worker's task state store (which no other run shares)."""

    async def load(key: str) -> Any:
        return store.get(key)

    async def save(key: str, value: Any) -> bool:
        store.set(key, value)
        return True

    return load, save
