"""How a task's jobs end: XCom, the outlets' asset events, the log, and the error that fails or retries it.

Whichever process ends the Airflow task (a worker, or the triggerer with ``end_from_trigger``), what it
leaves in XCom comes from one builder, :func:`result_xcoms`: for a single job its results as
``return_value``, its outcome as ``kie_task`` (the keys 0.1.0 wrote, and more) and its Kie task id as
``kie_task_id`` (published as soon as it exists, too); for many, every job's
outcome as ``return_value``. (Airflow renders the link on a worker; the triggerer adds it:
:func:`~airflow_provider_kie.links.link_xcoms`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_kie import models
from airflow_provider_kie.compat import listeners_registered
from airflow_provider_kie.events import JobOutcome, JobsEvent, Status
from airflow_provider_kie.exceptions import (
    KieError,
    KieJobsFailedError,
    KieTaskFailedError,
    KieTimeoutError,
)
from airflow_provider_kie.ledger import TASK_ID_KEY

XCOM_KIE_TASK = "kie_task"
RETURN_VALUE = "return_value"


def result_xcoms(event: JobsEvent, *, single: bool) -> dict[str, Any]:
    """The XCom the end of a task leaves (see the module's docstring)."""
    if single:
        (outcome,) = event.outcomes
        record = {**outcome.to_dict(), "kind": models.kind_of(outcome.model)}
        return {RETURN_VALUE: list(outcome.result), XCOM_KIE_TASK: record, TASK_ID_KEY: outcome.kie_task_id}
    return {RETURN_VALUE: [outcome.to_dict() for outcome in event.outcomes]}


def finish(
    context: Any, event: JobsEvent, *, single: bool, policy: str, model: str | None, keep: bool = True
) -> Any:
    """On a worker: keep (with ``keep``) the record a retry resumes from, push the XCom (Airflow writes
    ``return_value`` from what this returns), tell the outlets' asset events what was made, log the
    end, and return; or raise when a job did not succeed (``policy`` ``fail``, and always for a single
    job)."""
    from airflow_provider_kie import ledger
    from airflow_provider_kie.jobs import JobLog

    store = context.get("task_state_store") if keep else None
    if store is not None:  # first: it is what a retry reads
        ledger.keep_for_retry(store.set, event.record.for_retry(event.outcomes))
    if single and event.outcomes[0].status is Status.CREATED:  # not waited for
        context["ti"].xcom_push(key=TASK_ID_KEY, value=event.outcomes[0].kie_task_id)
        return event.outcomes[0].kie_task_id
    xcoms = result_xcoms(event, single=single)
    for key, value in xcoms.items():
        if key != RETURN_VALUE:
            context["ti"].xcom_push(key=key, value=value)
    if "task" in context:
        made = [uri for outcome in event.outcomes if outcome.succeeded for uri in outcome.result]
        context["task"].kie_result_urls = made
    if not single:
        for line in JobLog(len(event.outcomes), _log(context)).lines(event.outcomes):
            line()
    elif event.outcomes[0].succeeded:  # (a failure is raised below, with Kie's words)
        _log(context).info("Kie task %s succeeded", event.outcomes[0].kie_task_id)
    failed = event.failed
    if single and failed:
        raise_for(failed[0].as_error(conn_id=getattr(context.get("task"), "kie_conn_id", None)))
    if failed and policy == "fail":
        # The outcomes stay readable (trigger rule all_done downstream) though the task fails.
        context["ti"].xcom_push(key=RETURN_VALUE, value=xcoms[RETURN_VALUE])
        summary = "; ".join(f"job {o.index}: {o.status.value}: {o.message}" for o in failed[:5])
        message = f"{len(failed)} of {len(event.outcomes)} jobs did not succeed ({summary}{'; ...' if len(failed) > 5 else ''})"
        if any(o.retryable for o in failed):
            raise KieJobsFailedError(message + "; a retry resumes the jobs already created")
        raise AirflowFailException(message + "; a retry would not change that")
    describe_asset_events(context, asset_extra(event.outcomes, model))
    return xcoms[RETURN_VALUE]


def asset_extra(outcomes: Sequence[JobOutcome], model: str | None) -> dict[str, Any]:
    """An outlet's asset-event extra: what the jobs made (``stored`` URIs, or Kie's URLs in
    ``kie_urls``), their Kie task ids, model, kind and credits, and the jobs that did not succeed."""
    made = [o for o in outcomes if o.succeeded]
    stored = any(o.stored for o in made)
    return {
        "kie_task_ids": [o.kie_task_id for o in made],
        "model": model,
        "kind": models.kind_of(model),
        "credits_consumed": sum(o.credits_consumed or 0 for o in outcomes),
        "stored" if stored else "kie_urls": [uri for o in made for uri in o.result],
        "failed_jobs": [o.index for o in outcomes if not o.succeeded],
    }


def describe_asset_events(context: Any, extra: dict[str, Any]) -> None:
    """Put ``extra`` in the ``extra`` of each outlet's asset event."""
    outlets = getattr(context.get("task"), "outlets", None) or []
    events = context.get("outlet_events")
    if not outlets or events is None:
        return
    for outlet in outlets:
        try:
            events[outlet].extra.update(extra)
        except (KeyError, TypeError, AttributeError):  # not an asset (an old-style lineage object)
            continue


def may_end_in_triggerer(operator: Any, *, log: bool = True) -> bool:
    """``operator.end_from_trigger``, unless the task needs something only a worker does at success.

    A task that a trigger ends (``TaskSuccessEvent``) gets its state and XCom, but Airflow 3.3 records
    outlet asset events, runs ``on_success_callback`` and calls listeners (OpenLineage among them) only
    when a worker finishes the task. Such a task resumes on a worker after Kie's task succeeds, so
    nothing the user declared is dropped (and, with ``log``, its log says why).
    """
    if not operator.end_from_trigger:
        return False
    needs = [
        what
        for what, present in (
            ("outlets (asset events)", operator.outlets),
            ("an on_success_callback", operator.on_success_callback),
            ("Airflow listeners (such as OpenLineage)", listeners_registered()),
        )
        if present
    ]
    if needs and log:
        operator.log.info(
            "After Kie's task succeeds this task resumes on a worker rather than ending in the triggerer: "
            "it has %s, which only a worker honours",
            ", ".join(needs),
        )
    return not needs


def raise_for(error: KieError) -> NoReturn:
    """Raise ``error`` so that Airflow retries only what a retry can fix.

    Auth, credits, validation, an ambiguous create, a passed deadline: retrying would fail again (or pay
    twice), so the task fails at once. A failed generation or a transient error keep the task's retries.
    """
    if isinstance(error, KieTimeoutError) or not (error.retryable or isinstance(error, KieTaskFailedError)):
        raise AirflowFailException(str(error)) from error
    raise error


def _log(context: Any) -> Any:
    task = context.get("task")
    if task is not None:
        return task.log
    import logging

    return logging.getLogger(__name__)
