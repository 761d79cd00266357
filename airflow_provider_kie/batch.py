"""The one engine for N >= 1 Kie tasks in one coroutine: create each (paced by the key's limiter), wait
for all, copy the results. A single Kie task is a batch of one: KieTaskTrigger runs it so, the batch
trigger runs it in the triggerer, the batch operator on a worker when it does not defer.

Each item ends as an :class:`~airflow_provider_kie.events.ItemOutcome`. What was sent is kept as it
happens by a :class:`~airflow_provider_kie.ledger.BatchLedger` (XCom in the triggerer, the task state
store on a worker), so a restarted triggerer, a second run of the trigger or a retried task waits for
the Kie tasks that exist instead of paying for them again, and a createTask whose reply was lost is
reported, never resent unless allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_kie import storage
from airflow_provider_kie.api import CREATE_TASK, KieTask, TaskState
from airflow_provider_kie.events import BatchRecord, EventStatus, ItemOutcome, KieJobRef, KieTaskEvent
from airflow_provider_kie.exceptions import (
    KieAmbiguousCreateError,
    KieError,
    KieTimeoutError,
    KieValidationError,
)
from airflow_provider_kie.ledger import BATCH_RECORD_KEY as BATCH_RECORD_KEY  # importable here, as before
from airflow_provider_kie.ledger import BatchLedger, ItemClaim, Superseded, in_memory
from airflow_provider_kie.waiting import PollPolicy, wait_async

if TYPE_CHECKING:
    from airflow_provider_kie.callbacks import CallbackTarget
    from airflow_provider_kie.hints import Callbacks

#: What a batch with failed items does: fail the Airflow task (after every item ended), or succeed and
#: report them in its result.
#: createTask calls in flight at once; the key's limiter paces them to Kie's limit.
CREATES_IN_FLIGHT = 4
#: How many items' coroutines start before the loop gets to run other triggers.
LOOP_SLICE = 500
#: The failed items a batch's end logs one line each (a line per item of thousands held the triggerer's
#: loop while its log pipe drained them).
FAILURES_LOGGED = 50
#: The least time between two progress lines of a batch (a line is written only when its counts changed).
PROGRESS_EVERY = 10.0

Kept = TypeVar("Kept")  # what the batch keeps of an item's event: the event itself, or its outcome


@dataclass
class BatchItem:
    """One item of a batch: its createTask body (validated, files uploaded), the files or URLs it was
    given (for the manifest), and the values it sends unconfirmed (the catalog refused them and Kie's
    page could not be read: :attr:`~airflow_provider_kie.models.CheckedInput.unconfirmed`)."""

    body: dict[str, Any]
    sources: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "body": self.body,
            "sources": self.sources,
            **({"unconfirmed": self.unconfirmed} if self.unconfirmed else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchItem:
        return cls(dict(data["body"]), list(data.get("sources") or []), list(data.get("unconfirmed") or []))


class ValueProbes:
    """A value sent unconfirmed costs a batch one request, not one per item: the first item that sends
    it is its probe, and the others that send it wait for the probe's answer. Kie refusing the probe's
    input (a validation error) fails them with that error and no request; Kie taking it lets them go.
    An item probing several values at once that Kie refuses does not tell which: the next item tries."""

    def __init__(self) -> None:
        self._verdicts: dict[str, asyncio.Future[KieError | None]] = {}

    async def turn(self, keys: Sequence[str]) -> tuple[list[str], KieError | None]:
        """The keys this item probes and, if a probe of one of its keys was refused, that refusal."""
        while True:
            futures = [self._verdicts[k] for k in keys if k in self._verdicts]
            refused = next((f.result() for f in futures if f.done() and f.result() is not None), None)
            if refused is not None:
                return [], refused
            pending = [f for f in futures if not f.done()]
            if not pending:
                break
            await asyncio.wait(pending)
        mine = [k for k in keys if k not in self._verdicts]
        for key in mine:
            self._verdicts[key] = asyncio.get_running_loop().create_future()
        return mine, None

    def settle(self, keys: Sequence[str], error: BaseException | None) -> None:
        """The probe of ``keys`` was answered: taken (``error`` None), refused, or neither."""
        refused = error if isinstance(error, KieValidationError) and len(keys) == 1 else None
        for key in keys:
            verdict = self._verdicts[key]
            if error is not None and refused is None:  # no verdict: the next item that sends it probes
                del self._verdicts[key]
            if not verdict.done():
                verdict.set_result(refused)


class BatchProgress:
    """Counts of the items by state. A line is logged when they changed and the batch entered another
    phase (creating, waiting, done) or :data:`PROGRESS_EVERY` seconds passed since the last line: a
    handful of lines per batch, never one per poll."""

    ORDER = ("to create", "creating", "waiting", "queuing", "generating", "success", "fail", "error")

    def __init__(self, size: int, log: Any) -> None:
        self.size = size
        self.log = log
        self.states: dict[int, str] = {}
        self._counts: Counter[str] = Counter()  # kept with states: a thousand items change often
        self._logged: tuple[tuple[str, int], ...] = ()
        self._logged_phase = ""
        self._last_line = 0.0

    def begin(self, states: dict[int, str]) -> None:
        self.states = dict(states)
        self._counts = Counter(self.states.values())

    def set(self, index: int, state: str) -> None:
        old = self.states.get(index)
        if old != state:
            if old is not None:
                self._counts[old] -= 1
            self._counts[state] += 1
            self.states[index] = state
            self.report()

    def report(self, *, force: bool = False) -> None:
        if self.size == 1:  # a single task's log tells its own story
            return
        counts = +self._counts  # without the states no item is in
        key = tuple(sorted(counts.items()))
        phase = (
            "creating"
            if counts["to create"] or counts["creating"]
            else "done"
            if counts["success"] + counts["fail"] + counts["error"] == len(self.states)
            else "waiting"
        )
        now = time.monotonic()
        if key == self._logged or not (
            force or phase != self._logged_phase or now - self._last_line >= PROGRESS_EVERY
        ):
            return
        self._logged, self._logged_phase, self._last_line = key, phase, now
        parts = [f"{counts[name]} {name}" for name in self.ORDER if counts[name]]
        parts += [f"{n} {name}" for name, n in sorted(counts.items()) if name not in self.ORDER]
        self.log.info("Kie batch of %d: %s", self.size, ", ".join(parts))


class BatchRun:
    """Creates, waits for and stores every item of a batch on this event loop.

    ``record`` holds what an earlier try sent; ``ledger`` keeps what this run sends as it happens (XCom
    in a triggerer, the task state store on a worker) and, read first, what a stopped run sent: its Kie
    tasks are waited for, never created again (see :mod:`~airflow_provider_kie.ledger`).
    """

    def __init__(
        self,
        hook: Any,
        items: Sequence[BatchItem],
        *,
        timeout: float,
        poll_policy: PollPolicy,
        log: Any,
        record: BatchRecord | None = None,
        ledger: Callable[[], BatchLedger] | None = None,
        output_path: str | None = None,
        retry_ambiguous_create: bool = False,
        callbacks: Callbacks | None = None,
        callback_for: Callable[[int], CallbackTarget] | None = None,
        kept_awaited: bool = False,
    ) -> None:
        self.hook = hook
        self.items = list(items)
        self.timeout = timeout
        self.poll_policy = poll_policy
        self.log = log
        self.record = record or BatchRecord()
        self.new_ledger = ledger or (lambda: BatchLedger(*in_memory(), log=log))
        self.ledger = self.new_ledger()
        self.output_path = output_path
        self.retry_ambiguous_create = retry_ambiguous_create
        # In a triggerer whose connection has callback_base_url: each task is created with the plugin's
        # URL for ``callback_for(index)`` (the task instance, and the item of a batch) and waits for its
        # hint (docs/callbacks.md); so do the tasks in ``record`` when ``kept_awaited`` says they were
        # created so.
        self.callbacks = callbacks
        self.callback_for = callback_for if callbacks is not None else None
        self.kept_awaited = kept_awaited
        self.single = len(self.items) == 1
        self.progress = BatchProgress(len(self.items), log)
        self._creates = asyncio.Semaphore(CREATES_IN_FLIGHT)
        self._probes = ValueProbes()
        self._creating: dict[asyncio.Future[str], int] = {}  # createTask calls not yet recorded
        self._wake: dict[int, asyncio.Event] = {}  # per waiting item: poll now
        self._polled: dict[int, float] = {}  # per waiting item: when it was last polled (monotonic)

    async def run(self) -> list[ItemOutcome]:
        """One outcome per item, in the items' order. Each is made as its item ends, so the batch keeps
        one small object per finished item rather than its whole Kie task for every full garbage
        collection to walk."""
        return await self._every_event(ItemOutcome.of)

    async def events(self) -> list[KieTaskEvent]:
        """One event per item, in the items' order."""
        return await self._every_event(lambda _, event: event)

    async def _every_event(self, keep: Callable[[int, KieTaskEvent], Kept]) -> list[Kept]:
        while True:
            try:
                kept = await self.ledger.open()
            except asyncio.CancelledError:  # stopped while elected: hand the batch over at once
                await asyncio.shield(self.ledger.close())
                raise
            self._log_kept(kept)
            self.record = self.record.merged(kept)
            self.progress.begin(
                {i: "waiting" if i in self.record.jobs else "to create" for i in range(len(self.items))}
            )
            self.progress.report(force=True)
            try:
                outcomes = await self._every_item(keep)
            except asyncio.CancelledError:
                await asyncio.shield(self._keep_received())
                raise
            await self.ledger.close()
            if all(outcome is not None for outcome in outcomes):
                break
            # Another run took the batch over while this one created: follow it, then take what it
            # leaves (every item it created is waited for, none created again).
            self.ledger = self.new_ledger()
        self.progress.report(force=True)
        return [outcome for outcome in outcomes if outcome is not None]  # all are, once no run took over

    def _log_kept(self, kept: BatchRecord) -> None:
        if self.single and kept.jobs:
            self.log.info(
                "Kie task %s was created before a triggerer restart; waiting for it",
                kept.jobs[0].kie_task_id,
            )
        elif kept.jobs or kept.sent:
            self.log.info(
                "Kie batch: %d Kie tasks were created by an earlier run of this batch; waiting for them",
                len(kept.jobs),
            )

    async def _every_item(self, keep: Callable[[int, KieTaskEvent], Kept]) -> list[Kept | None]:
        """Each item's outcome. The Kie tasks already created are waited for at once (:data:`LOOP_SLICE`
        coroutines started at a time, so the loop runs other triggers meanwhile); an item to create gets
        its coroutine when a create place frees, not thousands of coroutines waiting for four places."""
        started: dict[int, asyncio.Future[Kept | None]] = {}

        def start(index: int) -> None:
            started[index] = asyncio.ensure_future(self._item(index, keep))

        try:
            kept = [index for index in range(len(self.items)) if index in self.record.jobs]
            for n, index in enumerate(kept):
                start(index)
                if n % LOOP_SLICE == LOOP_SLICE - 1:
                    await asyncio.sleep(0)
            for index in range(len(self.items)):
                if index not in started:
                    await self._creates.acquire()  # released by _job once the createTask is answered
                    start(index)
        except asyncio.CancelledError:
            for item in started.values():
                item.cancel()
            raise
        return list(await asyncio.gather(*(started[index] for index in range(len(self.items)))))

    async def _keep_received(self) -> None:
        """Cancelled (the triggerer stops, or hands the trigger to another): send nothing more, keep the
        id of every createTask whose reply still comes, and hand the batch over."""
        self.ledger.stop_sending()
        pending = []
        for create, index in self._creating.items():
            if self.ledger.marked_sent(index):
                pending.append((create, index))
            else:  # still waiting for the limiter or a retry: nothing of it left, nothing to wait for
                create.cancel()
        if pending:
            settings = await self.hook.get_settings()
            await asyncio.wait([create for create, _ in pending], timeout=settings.timeout)
        for create, index in pending:
            if create.done() and not create.cancelled() and create.exception() is None:
                job = KieJobRef.starting_now(create.result(), self.timeout)
                self.log.info(
                    "Kie batch item %d: created Kie task %s as the run stopped", index, job.kie_task_id
                )
                await self.ledger.created(index, job)
        await self.ledger.close()

    async def _item(self, index: int, keep: Callable[[int, KieTaskEvent], Kept]) -> Kept | None:
        event = await self._one(index)
        return None if event is None else keep(index, event)

    async def _one(self, index: int) -> KieTaskEvent | None:
        """Item ``index``'s outcome; None if another run took the batch over before it was created."""
        job = self.record.jobs.get(index)
        try:
            created_here = job is None
            if job is None:
                job = await self._job(index)
            observe, sleep, read_first = self._observer(index), self._sleeper(index), True
            if self.callbacks is not None:
                # A task created here with the plugin's URL waits for its hint at once; for one kept from
                # before a restart, its first read tells.
                awaited = not self.items[index].body.get("callBackUrl") if created_here else self.kept_awaited
                log = self.log if self.single else None  # a line per task: not for thousands
                wait = self.callbacks.wait_for(job, log, awaited=awaited, between_polls=sleep)
                observe, sleep, read_first = _both(observe, wait.observe), wait.sleep, not wait.awaited
            task = await wait_async(
                self.hook, job, self.poll_policy, self.log, observe, sleep, read_first=read_first
            )
            self.progress.set(index, task.state.value)
            self._wake_older(job)  # this item was just polled: not woken
            stored = None
            if self.output_path is not None and task.state is TaskState.SUCCESS:
                stored = await storage.persist_async(task, self.output_path, self._provenance(index))
                if self.single:
                    self.log.info(
                        "Kie task %s: %d result(s) stored in %s",
                        job.kie_task_id,
                        len(stored),
                        self.output_path,
                    )
            return KieTaskEvent.finished(job, task, stored)
        except Superseded:
            return None
        except KieTimeoutError as error:
            self.progress.set(index, "error")
            return KieTaskEvent(EventStatus.TIMEOUT, job, message=str(error))
        except KieError as error:
            self.progress.set(index, "error")
            return KieTaskEvent.errored(job, error)
        except Exception as error:  # one item's surprise must not lose the others' outcomes
            self.log.exception("Kie task %s (item %d): unexpected error", job and job.kie_task_id, index)
            self.progress.set(index, "error")
            return KieTaskEvent.errored(job, error)
        finally:  # when one finishes, only the items still waiting are looked at
            self._wake.pop(index, None)
            self._polled.pop(index, None)

    async def _job(self, index: int) -> KieJobRef:
        """Create item ``index``'s Kie task: marked in the ledger as it leaves, its id kept when it comes."""
        try:
            if index in self.record.sent and not self.retry_ambiguous_create:
                raise KieAmbiguousCreateError(
                    "its createTask was sent by an earlier run of this batch that stopped before its task "
                    "id came back, so a Kie task may exist; it was not sent again",
                    operation=CREATE_TASK,
                )
            body = self.items[index].body
            probing, refused = await self._probes.turn(self.items[index].unconfirmed)
            if refused is not None:
                raise type(refused)(
                    f"{refused.message} (another item of this batch sent the same input, and Kie refused "
                    "it: this one was not sent)",
                    code=refused.code,
                    operation=CREATE_TASK,
                )
            self.progress.set(index, "creating")
            target = self.callback_for
            create = asyncio.ensure_future(
                self.hook.create_task(
                    body["model"],
                    body["input"],
                    body.get("callBackUrl"),
                    validate=False,  # the body was validated where it was built, before any request
                    claim=ItemClaim(self.ledger, index),
                    callback_for=None if body.get("callBackUrl") or target is None else target(index),
                )
            )
            self._creating[create] = index
            try:
                # Shielded: a run cancelled mid-create still gets the reply and keeps its id (_keep_received).
                kie_task_id = await asyncio.shield(create)
            except BaseException as error:
                self._probes.settle(probing, error)
                raise
            self._probes.settle(probing, None)
            del self._creating[create]
        finally:
            self._creates.release()  # the place _every_item took for this item
        job = KieJobRef.starting_now(kie_task_id, self.timeout)
        if self.single:
            self.log.info("Created Kie task %s (model %s)", kie_task_id, body["model"])
        self.record.jobs[index] = job
        await self.ledger.created(index, job)
        self.progress.set(index, "waiting")
        return job

    def _sleeper(self, index: int) -> Callable[[float], Awaitable[None]]:
        """Sleep until the next poll, or until a task created about when this one was, or later, has
        finished: the batch's tasks run the same model, so this one is likely done too. A task alone has
        no others to wake it."""
        if self.single:
            return asyncio.sleep
        wake = self._wake[index] = asyncio.Event()

        async def sleep(delay: float) -> None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
            wake.clear()

        return sleep

    def _wake_older(self, finished: KieJobRef) -> None:
        """Poll now the unfinished tasks created no later than ``initial_interval`` after ``finished``
        (the batch's creates come in bursts, and a burst finishes together), each at most once per
        ``initial_interval``: never faster than the policy's fastest rate."""
        recent = time.monotonic() - self.poll_policy.initial_interval
        latest = finished.deadline + self.poll_policy.initial_interval
        for index, wake in self._wake.items():
            job = self.record.jobs.get(index)
            if job is not None and job.deadline <= latest and self._polled.get(index, 0.0) <= recent:
                wake.set()

    def _observer(self, index: int) -> Callable[[KieTask | KieError], None]:
        def observe(outcome: KieTask | KieError) -> None:
            self._polled[index] = time.monotonic()
            if isinstance(outcome, KieTask):
                self.progress.set(index, outcome.state.value)

        return observe

    def _provenance(self, index: int) -> dict[str, Any]:
        return {"input": self.items[index].body.get("input"), "sources": self.items[index].sources}


def _both(*observers: Callable[[KieTask | KieError], None]) -> Callable[[KieTask | KieError], None]:
    def observe(outcome: KieTask | KieError) -> None:
        for observer in observers:
            observer(outcome)

    return observe


def log_outcomes(log: Any, outcomes: Sequence[ItemOutcome]) -> None:
    """The totals, then a line per item that did not succeed (:data:`FAILURES_LOGGED` at most): every
    item's outcome is in ``return_value``."""
    for line in outcome_lines(log, outcomes):
        line()


async def log_outcomes_async(log: Any, outcomes: Sequence[ItemOutcome]) -> None:
    """:func:`log_outcomes` on an event loop, letting it run after each line: a line may wait for the
    triggerer's log pipe."""
    for line in outcome_lines(log, outcomes):
        line()
        await asyncio.sleep(0)


def outcome_lines(log: Any, outcomes: Sequence[ItemOutcome]) -> Iterator[Callable[[], None]]:
    failed = [o for o in outcomes if not o.succeeded]
    credits = sum(o.credits_consumed or 0 for o in outcomes)
    yield partial(
        log.info,
        "Kie batch: %d of %d items succeeded, %d credits",
        len(outcomes) - len(failed),
        len(outcomes),
        credits,
    )
    for o in failed[:FAILURES_LOGGED]:
        yield partial(
            log.warning,
            "Kie batch item %d: %s, Kie task %s: %s",
            o.index,
            o.status.value,
            o.kie_task_id,
            o.error,
        )
    if len(failed) > FAILURES_LOGGED:
        yield partial(
            log.warning,
            "Kie batch: %d more items did not succeed (see return_value)",
            len(failed) - FAILURES_LOGGED,
        )
