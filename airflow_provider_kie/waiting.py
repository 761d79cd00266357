"""The one wait decision: after each recordInfo, is the task finished, do we poll again (when), or stop?

The engine's wait (on a worker and in the triggerer) and the sensor's ``poke`` both step through
:func:`decide`, so a task id Kie never knows, a deadline, a non-retryable error or a finished task end
the wait the same way wherever it runs. The loop itself (:func:`wait_async`, which the engine runs on a
worker and in the triggerer alike) only fetches, sleeps and repeats.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from airflow_provider_kie.api import KieTask
from airflow_provider_kie.events import JobRef
from airflow_provider_kie.exceptions import KieError, KieInputError, KieNotFoundError, KieTimeoutError


@dataclass(frozen=True)
class PollPolicy:
    """Start near Kie's advice (every 2-3 s) and back off with the task's age.

    The interval is ``max(initial_interval, backoff * age)``, capped at ``max_interval``: a 60 s task
    costs about 9 recordInfo calls, a 10 minute one about 25. "recordInfo is null" is tolerated for
    ``not_found_grace`` seconds after waiting starts (Kie answers it briefly after creation).
    """

    initial_interval: float = 3.0
    backoff: float = 1 / 3
    max_interval: float = 30.0
    not_found_grace: float = 60.0

    def __post_init__(self) -> None:
        for name in ("initial_interval", "max_interval"):
            if not getattr(self, name) > 0:
                raise KieInputError(
                    name, f"must be a positive number of seconds, got {getattr(self, name)!r}"
                )
        if self.backoff < 0 or self.not_found_grace < 0:
            raise KieInputError("backoff", "backoff and not_found_grace must not be negative")

    def interval(self, age: float) -> float:
        return min(self.max_interval, max(self.initial_interval, self.backoff * max(age, 0.0)))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PollPolicy:
        return cls(**data)


@dataclass(frozen=True)
class Finished:
    """The task is terminal (``success`` or ``fail``): stop waiting and report it."""

    task: KieTask


@dataclass(frozen=True)
class PollAgain:
    """Not finished yet: poll again after ``delay`` seconds."""

    delay: float


def decide(
    policy: PollPolicy,
    *,
    kie_task_id: str,
    outcome: KieTask | KieError,
    waiting_since: float,
    deadline: float,
    now: float | None = None,
) -> Finished | PollAgain:
    """What to do after ``outcome`` (the task read, or the error reading it); raises when waiting must end.

    A non-retryable error is raised as is; "not found" past the grace period and the deadline raise.
    Retryable errors (already retried by the hook) and pending states poll again.
    """
    now = time.time() if now is None else now
    if isinstance(outcome, KieTask) and outcome.is_terminal:
        return Finished(outcome)
    if isinstance(outcome, KieNotFoundError):
        if now - waiting_since > policy.not_found_grace:
            raise KieNotFoundError(
                f"Kie still answers '{outcome.message}' {now - waiting_since:.0f} s after waiting started: "
                "the task id is unknown to this API key",
                code=outcome.code,
                operation=outcome.operation,
                kie_task_id=kie_task_id,
            ) from outcome
    elif isinstance(outcome, KieError) and not outcome.retryable:
        outcome.kie_task_id = outcome.kie_task_id or kie_task_id
        raise outcome
    if now >= deadline:
        state = outcome.state.value if isinstance(outcome, KieTask) else type(outcome).__name__
        raise KieTimeoutError(
            f"not finished at the deadline, {now - waiting_since:.0f} s after waiting started "
            f"(last seen: {state})",
            kie_task_id=kie_task_id,
        )
    created = outcome.created_at.timestamp() if isinstance(outcome, KieTask) and outcome.created_at else None
    age = now - (created if created is not None else waiting_since)
    return PollAgain(max(0.0, min(policy.interval(age), deadline - now)))


@dataclass
class Waiter:
    """One wait for ``job``: :meth:`step` logs each error and each change of state, not every poll (or
    hands each outcome to ``observe``, which a batch uses to log changes of the whole batch), and
    applies :func:`decide` to it."""

    job: JobRef
    policy: PollPolicy
    log: Any
    observe: Callable[[KieTask | KieError], None] | None = None
    waiting_since: float = field(default_factory=time.time)
    _logged_state: str = ""

    def step(self, outcome: KieTask | KieError) -> Finished | PollAgain:
        if self.observe is not None:
            self.observe(outcome)
        elif isinstance(outcome, KieError):
            self.log.warning("Kie task %s: %s", self.job.kie_task_id, outcome)
            self._logged_state = ""
        elif outcome.state.value != self._logged_state:
            self._logged_state = outcome.state.value
            self.log.info("Kie task %s is %s", self.job.kie_task_id, outcome.state.value)
        return decide(
            self.policy,
            kie_task_id=self.job.kie_task_id,
            outcome=outcome,
            waiting_since=self.waiting_since,
            deadline=self.job.deadline,
        )


class _AsyncReader(Protocol):
    async def get_task(self, kie_task_id: str) -> KieTask: ...


async def wait_async(
    hook: _AsyncReader,
    job: JobRef,
    policy: PollPolicy,
    log: Any,
    observe: Callable[[KieTask | KieError], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    read_first: bool = True,
) -> KieTask:
    """Poll on this event loop (a trigger) until the task is terminal; ``sleep`` waits between polls
    (one of many jobs' may end early, when a task created before this one has finished; a callback's hint
    ends it too). Without ``read_first``, the first read waits for ``sleep`` too."""
    waiter = Waiter(job, policy, log, observe)
    if not read_first:
        await sleep(policy.interval(0.0))
    while True:
        try:
            outcome: KieTask | KieError = await hook.get_task(job.kie_task_id)
        except KieError as error:
            outcome = error
        step = waiter.step(outcome)
        if isinstance(step, Finished):
            return step.task
        await sleep(step.delay)
