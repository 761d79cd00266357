"""How often to ask Kie about a task, and until when: one policy for the trigger, operator and sensor."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_kie.api import KieTask
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


def next_delay(
    policy: PollPolicy,
    *,
    task_id: str,
    outcome: KieTask | KieError,
    waiting_since: float,
    deadline: float,
    now: float | None = None,
) -> float:
    """Seconds until the next poll after ``outcome`` of the last one; raises when waiting must end.

    A non-retryable error is raised as is; "not found" past the grace period and the deadline raise.
    Retryable errors (already retried by the hook) and pending states just wait for the next poll.
    """
    now = time.time() if now is None else now
    if isinstance(outcome, KieNotFoundError):
        if now - waiting_since > policy.not_found_grace:
            outcome.task_id = task_id
            outcome.message = (
                f"Kie still answers '{outcome.message}' {now - waiting_since:.0f} s after waiting started: "
                "the task id is unknown to this API key"
            )
            raise outcome
    elif isinstance(outcome, KieError) and not outcome.retryable:
        outcome.task_id = task_id
        raise outcome
    if now >= deadline:
        state = outcome.state.value if isinstance(outcome, KieTask) else type(outcome).__name__
        raise KieTimeoutError(
            f"not finished at the deadline, {now - waiting_since:.0f} s after waiting started "
            f"(last seen: {state})",
            task_id=task_id,
        )
    created = outcome.created_at.timestamp() if isinstance(outcome, KieTask) and outcome.created_at else None
    age = now - (created if created is not None else waiting_since)
    return max(0.0, min(policy.interval(age), deadline - now))


def after_poll(
    policy: PollPolicy,
    *,
    task_id: str,
    outcome: KieTask | KieError,
    waiting_since: float,
    deadline: float,
    log: Any,
) -> float | None:
    """None if ``outcome`` is the finished task; else log it and return the seconds to the next poll
    (raising as :func:`next_delay` does). The one wait loop step of the operator and the trigger."""
    if isinstance(outcome, KieTask) and outcome.is_terminal:
        return None
    if isinstance(outcome, KieError):
        log.warning("Kie task %s: %s", task_id, outcome)
    else:
        log.info("Kie task %s is %s", task_id, outcome.state.value)
    return next_delay(
        policy, task_id=task_id, outcome=outcome, waiting_since=waiting_since, deadline=deadline
    )
