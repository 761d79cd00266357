"""The one engine: N >= 1 Kie jobs in one coroutine. Each job is created under the key's limiter and the
:class:`~airflow_provider_kie.ledger.Ledger` (marked as its request leaves, its id kept when the reply
comes), waited for (callbacks, then polls), its results stored, and it ends as one
:class:`~airflow_provider_kie.events.JobOutcome`. The triggerer runs it (``triggers/jobs.py``), and so
does a worker (``operators/base.py``), each with the same ledger and the same rule, so a restarted
triggerer, a second run of a trigger, a retried task or a killed worker waits for the Kie tasks that
exist instead of paying for them again, and a createTask whose reply was lost is reported, never resent
unless allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_provider_kie import storage
from airflow_provider_kie.api import CREATE_TASK, KieTask, TaskState
from airflow_provider_kie.events import Job, JobOutcome, JobRecord, JobRef, Status
from airflow_provider_kie.exceptions import KieAmbiguousCreateError, KieError, KieValidationError
from airflow_provider_kie.ledger import JobClaim, Ledger, Superseded, in_memory
from airflow_provider_kie.waiting import PollPolicy, wait_async

if TYPE_CHECKING:
    from airflow_provider_kie.callbacks import CallbackTarget
    from airflow_provider_kie.hints import Callbacks

#: createTask calls in flight at once; the key's limiter paces them to Kie's limit.
CREATES_IN_FLIGHT = 4
#: How many jobs' coroutines start before the loop gets to run other triggers.
LOOP_SLICE = 500
#: The failed jobs a run's end logs one line each (a line per job of thousands held the triggerer's
#: loop while its log pipe drained them).
FAILURES_LOGGED = 50
#: A job's states that its run's end reports (one line fewer per job where thousands wait at once).
_ENDS = (TaskState.SUCCESS.value, TaskState.FAIL.value)
#: The least time between two progress lines of a run of many jobs (and only when its counts changed).
PROGRESS_EVERY = 10.0


class JobLog:
    """What a run says. A run of one job tells that job's story (created, its states, stored); a run of
    many logs the counts of its jobs by state when they changed and the run entered another phase
    (creating, waiting, done), or :data:`PROGRESS_EVERY` seconds passed: a handful of lines, never one
    per poll."""

    ORDER = ("to create", "creating", "waiting", "queuing", "generating", "success", "fail", "error")

    def __init__(self, size: int, log: Any) -> None:
        self.size = size
        self.log = log
        self.states: dict[int, str] = {}
        self._counts: Counter[str] = Counter()  # kept with states: a thousand jobs change often
        self._logged: tuple[tuple[str, int], ...] = ()
        self._logged_phase = ""
        self._last_line = 0.0
        self._before: set[int] = set()

    def job(self, message: str, *args: Any) -> None:
        """A line about one job: said when the run has only that one."""
        if self.size == 1:
            self.log.info(message, *args)

    def begin(self, record: JobRecord) -> None:
        self._before = set(record.jobs)  # a single job's first state line says it was created before
        if record.jobs and self.size > 1:
            self.log.info("Kie jobs: waiting for %d Kie tasks created before this run", len(record.jobs))
        self.states = {i: "waiting" if i in record.jobs else "to create" for i in range(self.size)}
        self._counts = Counter(self.states.values())
        self.report(force=True)

    def set(self, index: int, state: str, kie_task_id: str | None = None) -> None:
        old = self.states.get(index)
        if old != state:
            if old is not None:
                self._counts[old] -= 1
            self._counts[state] += 1
            self.states[index] = state
            # How a job ended its run's end says; that it was created before this run, its first line.
            if kie_task_id is not None and (index in self._before or state not in _ENDS):
                before = ", created before this run," if index in self._before else ""
                self._before.discard(index)
                self.job("Kie task %s%s is %s", kie_task_id, before, state)
            self.report()

    def report(self, *, force: bool = False) -> None:
        if self.size == 1:
            return
        counts = +self._counts  # without the states no job is in
        key = tuple(sorted(counts.items()))
        done = counts["success"] + counts["fail"] + counts["error"] == len(self.states)
        phase = "creating" if counts["to create"] or counts["creating"] else "done" if done else "waiting"
        now = time.monotonic()
        if key == self._logged or not (
            force or phase != self._logged_phase or now - self._last_line >= PROGRESS_EVERY
        ):
            return
        self._logged, self._logged_phase, self._last_line = key, phase, now
        parts = [f"{counts[name]} {name}" for name in self.ORDER if counts[name]]
        parts += [f"{n} {name}" for name, n in sorted(counts.items()) if name not in self.ORDER]
        self.log.info("Kie jobs, %d in all: %s", self.size, ", ".join(parts))

    def lines(self, outcomes: Sequence[JobOutcome]) -> Iterator[Callable[[], None]]:
        """The end: the totals, then a line per job that did not succeed (:data:`FAILURES_LOGGED` at most;
        every outcome is in XCom)."""
        failed = [o for o in outcomes if not o.succeeded and o.status is not Status.CREATED]
        credits = sum(o.credits_consumed or 0 for o in outcomes)
        yield partial(
            self.log.info,
            "Kie jobs: %d of %d succeeded, %g credits",
            len(outcomes) - len(failed),
            len(outcomes),
            credits,
        )
        for o in failed[:FAILURES_LOGGED]:
            yield partial(
                self.log.warning,
                "Kie job %d: %s, Kie task %s: %s",
                o.index,
                o.status.value,
                o.kie_task_id,
                o.message,
            )
        if len(failed) > FAILURES_LOGGED:
            yield partial(
                self.log.warning,
                "Kie jobs: %d more did not succeed (see XCom)",
                len(failed) - FAILURES_LOGGED,
            )


class ValueProbes:
    """A value sent unconfirmed costs a run one request, not one per job: the first job that sends it is
    its probe, and the others that send it wait for the probe's answer. Kie refusing the probe's input
    (a validation error) fails them with that error and no request; Kie taking it lets them go. A job
    probing several values at once that Kie refuses does not tell which: the next job tries."""

    def __init__(self) -> None:
        self._verdicts: dict[str, asyncio.Future[KieError | None]] = {}

    async def turn(self, keys: Sequence[str]) -> tuple[list[str], KieError | None]:
        """The keys this job probes and, if a probe of one of its keys was refused, that refusal."""
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
            if error is not None and refused is None:  # no verdict: the next job that sends it probes
                del self._verdicts[key]
            if not verdict.done():
                verdict.set_result(refused)


class JobRun:
    """Creates, waits for and stores every job on this event loop.

    ``record`` holds what an earlier try sent; ``ledger`` keeps what this run sends as it happens (XCom
    in a triggerer, the task state store on a worker) and, read first, what a stopped run sent: its Kie
    tasks are waited for, never created again (see :mod:`~airflow_provider_kie.ledger`). With ``wait``
    False a job ends once its Kie task exists.
    """

    def __init__(
        self,
        hook: Any,
        jobs: Sequence[Job],
        *,
        timeout: float,
        poll_policy: PollPolicy,
        log: Any,
        record: JobRecord | None = None,
        ledger: Callable[[], Ledger] | None = None,
        output_path: str | None = None,
        retry_ambiguous_create: bool = False,
        callbacks: Callbacks | None = None,
        callback_for: Callable[[int], CallbackTarget] | None = None,
        kept_awaited: bool = False,
        wait: bool = True,
        ended: dict[int, JobOutcome] | None = None,
    ) -> None:
        self.hook = hook
        self.jobs = list(jobs)
        self.timeout = timeout
        self.poll_policy = poll_policy
        self.record = record or JobRecord()
        self.new_ledger = ledger or (lambda: Ledger(*in_memory(), log=log))
        self.ledger = self.new_ledger()
        self.output_path = output_path
        self.retry_ambiguous_create = retry_ambiguous_create
        # With a connection's callback_base_url, each task is created with the plugin's URL for
        # ``callback_for(index)``; with ``callbacks`` (a triggerer) it waits for its hint
        # (docs/callbacks.md), and so do the tasks in ``record`` when ``kept_awaited`` says they were
        # created so.
        self.callbacks = callbacks
        self.callback_for = callback_for
        self.kept_awaited = kept_awaited
        self.wait = wait
        self.ended = ended or {}  # jobs whose outcome is known already: neither created nor waited for
        self.log = JobLog(len(self.jobs), log)
        self._creates = asyncio.Semaphore(CREATES_IN_FLIGHT)
        self._probes = ValueProbes()
        self._creating: dict[asyncio.Future[str], int] = {}  # createTask calls not yet recorded
        self._wake: dict[int, asyncio.Event] = {}  # per waiting job: poll now
        self._polled: dict[int, float] = {}  # per waiting job: when it was last polled (monotonic)

    async def run(self) -> list[JobOutcome]:
        """One outcome per job, in order, each made as its job ends: the run keeps one small object per
        finished job rather than its whole Kie task for every full garbage collection to walk."""
        while True:
            try:
                needed = [
                    i for i in range(len(self.jobs)) if i not in self.record.jobs and i not in self.ended
                ]
                kept = await self.ledger.open(needed)
            except asyncio.CancelledError:  # stopped while elected: hand the jobs over at once
                await asyncio.shield(self.ledger.close())
                raise
            self.record = self.record.merged(kept)
            self.log.begin(self.record)
            try:
                outcomes = await self._every_job()
            except asyncio.CancelledError:
                await asyncio.shield(self._keep_received())
                raise
            await self.ledger.close()
            if all(outcome is not None for outcome in outcomes):
                break
            # Another run took the jobs over while this one created: follow it, then take what it leaves
            # (every job it created is waited for, none created again).
            self.ledger = self.new_ledger()
        self.log.report(force=True)
        return [outcome for outcome in outcomes if outcome is not None]  # all are, once no run took over

    async def _every_job(self) -> list[JobOutcome | None]:
        """Each job's outcome. The Kie tasks already created are waited for at once (:data:`LOOP_SLICE`
        coroutines started at a time, so the loop runs other triggers meanwhile); a job to create gets
        its coroutine when a create place frees, not thousands of coroutines waiting for four places."""
        started: dict[int, asyncio.Future[JobOutcome | None]] = {}

        def start(index: int) -> None:
            started[index] = asyncio.ensure_future(self._one(index))

        try:
            kept = [i for i in range(len(self.jobs)) if i in self.record.jobs or i in self.ended]
            for n, index in enumerate(kept):
                start(index)
                if n % LOOP_SLICE == LOOP_SLICE - 1:
                    await asyncio.sleep(0)
            for index in range(len(self.jobs)):
                if index not in started:
                    await self._creates.acquire()  # released by _create once the createTask is answered
                    start(index)
        except asyncio.CancelledError:
            for job in started.values():
                job.cancel()
            raise
        return list(await asyncio.gather(*(started[index] for index in range(len(self.jobs)))))

    async def _keep_received(self) -> None:
        """Cancelled (the triggerer stops, or hands the trigger to another): send nothing more, keep the
        id of every createTask whose reply still comes, and hand the jobs over."""
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
                ref = JobRef.starting_now(create.result(), self.timeout)
                self.log.log.info(
                    "Kie job %d: created Kie task %s as the run stopped", index, ref.kie_task_id
                )
                await self.ledger.created(index, ref)
        await self.ledger.close()

    async def _one(self, index: int) -> JobOutcome | None:
        """Job ``index``'s outcome; None if another run took the jobs over before it was created."""
        if index in self.ended:
            return self.ended[index]
        job, ref = self.jobs[index], self.record.jobs.get(index)
        try:
            created_here = ref is None
            if ref is None:
                ref = await self._create(index)
            if not self.wait:
                return JobOutcome.created(index, ref, job.model)
            observe, sleep, read_first = self._observer(index), self._sleeper(index), True
            if self.callbacks is not None:
                # A task created here with the plugin's URL waits for its hint at once; for one kept from
                # before a restart, its first read tells.
                awaited = not job.body.get("callBackUrl") if created_here else self.kept_awaited
                log = self.log.log if self.log.size == 1 else None  # a line per task: not for thousands
                wait = self.callbacks.wait_for(ref, log, awaited=awaited, between_polls=sleep)
                observe, sleep, read_first = _both(observe, wait.observe), wait.sleep, not wait.awaited
            task = await wait_async(
                self.hook, ref, self.poll_policy, self.log.log, observe, sleep, read_first=read_first
            )
            self.log.set(index, task.state.value, task.kie_task_id)
            self._wake_older(ref)  # this job was just polled: not woken
            return JobOutcome.finished(index, ref, task, await self._stored(task, job))
        except Superseded:
            return None
        except Exception as error:  # one job's surprise must not lose the others' outcomes
            if not isinstance(error, KieError):
                self.log.log.exception(
                    "Kie job %d (Kie task %s): unexpected error", index, ref and ref.kie_task_id
                )
            self.log.set(index, "error")
            return JobOutcome.errored(index, ref, error, job.model)
        finally:  # when one finishes, only the jobs still waiting are looked at
            self._wake.pop(index, None)
            self._polled.pop(index, None)

    async def _stored(self, task: KieTask, job: Job) -> list[str] | None:
        if self.output_path is None or task.state is not TaskState.SUCCESS:
            return None
        stored = await storage.persist_async(task, self.output_path, job.provenance)
        self.log.job(
            "Kie task %s: %d result(s) stored in %s", task.kie_task_id, len(stored), self.output_path
        )
        return stored

    async def _create(self, index: int) -> JobRef:
        """Create job ``index``'s Kie task: marked in the ledger as it leaves, its id kept when it comes."""
        job = self.jobs[index]
        try:
            if index in self.record.sent and not self.retry_ambiguous_create:
                raise KieAmbiguousCreateError(
                    "its createTask was sent by an earlier run that stopped before its task id came back, "
                    "so a Kie task may exist; it was not sent again",
                    operation=CREATE_TASK,
                )
            probing, refused = await self._probes.turn(job.unconfirmed)
            if refused is not None:
                raise type(refused)(
                    f"{refused.message} (another job of this run sent the same input, and Kie refused it: "
                    "this one was not sent)",
                    code=refused.code,
                    operation=CREATE_TASK,
                )
            self.log.set(index, "creating")
            target = self.callback_for
            create = asyncio.ensure_future(
                self.hook.create(
                    job,
                    claim=JobClaim(self.ledger, index),
                    callback_for=None if job.body.get("callBackUrl") or target is None else target(index),
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
            self._creates.release()  # the place _every_job took for this job
        ref = JobRef.starting_now(kie_task_id, self.timeout)
        self.log.job("Created Kie task %s (model %s)", kie_task_id, job.model)
        self.record.jobs[index] = ref
        await self.ledger.created(index, ref)
        self.log.set(index, "waiting")
        return ref

    def _sleeper(self, index: int) -> Callable[[float], Awaitable[None]]:
        """Sleep until the next poll, or until a task created about when this one was, or later, has
        finished: the run's tasks were created together, so this one is likely done too. A job alone has
        no others to wake it."""
        if len(self.jobs) == 1:
            return asyncio.sleep
        wake = self._wake[index] = asyncio.Event()

        async def sleep(delay: float) -> None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
            wake.clear()

        return sleep

    def _wake_older(self, finished: JobRef) -> None:
        """Poll now the unfinished tasks created no later than ``initial_interval`` after ``finished``
        (creates come in bursts, and a burst finishes together), each at most once per
        ``initial_interval``: never faster than the policy's fastest rate."""
        recent = time.monotonic() - self.poll_policy.initial_interval
        latest = finished.deadline + self.poll_policy.initial_interval
        for index, wake in self._wake.items():
            ref = self.record.jobs.get(index)
            if ref is not None and ref.deadline <= latest and self._polled.get(index, 0.0) <= recent:
                wake.set()

    def _observer(self, index: int) -> Callable[[KieTask | KieError], None]:
        def observe(outcome: KieTask | KieError) -> None:
            self._polled[index] = time.monotonic()
            if isinstance(outcome, KieTask):
                self.log.set(index, outcome.state.value, outcome.kie_task_id)

        return observe


def _both(*observers: Callable[[KieTask | KieError], None]) -> Callable[[KieTask | KieError], None]:
    def observe(outcome: KieTask | KieError) -> None:
        for observer in observers:
            observer(outcome)

    return observe
