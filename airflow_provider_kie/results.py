"""A finished Kie task becomes XCom and a return value, or an error that fails or retries the task.

Whichever process ends the Airflow task (a worker, or the triggerer with ``end_from_trigger``), what a
success leaves in XCom comes from one builder, :func:`result_xcoms`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_kie import models, storage
from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.compat import listeners_registered
from airflow_provider_kie.events import EventStatus, ItemOutcome, KieTaskEvent
from airflow_provider_kie.exceptions import KieError, KieTaskFailedError, KieTimeoutError

XCOM_KIE_TASK_ID = "kie_task_id"
XCOM_KIE_TASK = "kie_task"
# When a trigger created the Kie task: the deadline it set (epoch seconds), for a restarted triggerer.
XCOM_KIE_TASK_DEADLINE = "kie_task_deadline"
# What 0.1.0 wrote as its trigger sent createTask (epoch seconds); still read (triggers/kie.py).
XCOM_KIE_CREATE_SENT = "kie_create_sent"
RETURN_VALUE = "return_value"


def result_xcoms(task: KieTask, stored: list[str] | None = None) -> dict[str, Any]:
    """The XCom a finished task leaves: ``return_value`` (the stored URIs when results were copied to
    ``output_path``, else Kie's result URLs) and ``kie_task`` (the record, Kie's URLs included); the
    extra link's XCom is :func:`~airflow_provider_kie.links.link_xcoms`."""
    urls = list(task.result_urls)
    record = {**task.to_dict(), "kind": models.kind_of(task.model)}
    return {RETURN_VALUE: urls if stored is None else stored, XCOM_KIE_TASK: record}


def task_result(
    context: Any,
    task: KieTask,
    *,
    output: Any = None,
    provenance: Any = None,
    stored: list[str] | None = None,
) -> list[str]:
    """On a worker: copy the results to ``output`` (a folder, if given and the trigger did not already
    copy them to ``stored``), push :func:`result_xcoms`, tell the task's outlet asset events what was
    made, and return ``return_value``; raise if the task failed.

    Airflow itself writes ``return_value`` (from what ``execute`` returns) and, on Airflow 3, the link
    (rendered from ``kie_result_urls`` on the operator); only the rest is pushed here.
    """
    if stored is None and output is not None and task.state is TaskState.SUCCESS:
        stored = storage.persist(task, output, provenance)
    xcoms = result_xcoms(task, stored)
    for key, value in xcoms.items():
        if key != RETURN_VALUE:
            context["ti"].xcom_push(key=key, value=value)
    if "task" in context:
        context["task"].kie_result_urls = xcoms[RETURN_VALUE]
    if task.state is TaskState.FAIL:
        raise KieTaskFailedError(
            f"the task failed with failCode {task.fail_code!r}: {task.fail_msg or 'no failMsg'}",
            kie_task_id=task.kie_task_id,
            fail_code=task.fail_code,
            operation="task",
        )
    describe_asset_events(context, task_asset_extra(task, stored))
    return xcoms[RETURN_VALUE]


def describe_asset_events(context: Any, extra: dict[str, Any]) -> None:
    """Put ``extra`` (what the task made) in the ``extra`` of each outlet's asset event."""
    outlets = getattr(context.get("task"), "outlets", None) or []
    events = context.get("outlet_events")
    if not outlets or events is None:
        return
    for outlet in outlets:
        try:
            events[outlet].extra.update(extra)
        except (KeyError, TypeError, AttributeError):  # not an asset (an old-style lineage object)
            continue


def task_asset_extra(task: KieTask, stored: list[str] | None) -> dict[str, Any]:
    """An asset event's extra for one Kie task."""
    return {
        "kie_task_id": task.kie_task_id,
        "model": task.model,
        "kind": models.kind_of(task.model),
        "credits_consumed": None if task.credits_consumed is None else float(task.credits_consumed),
        "kie_urls": list(task.result_urls),
        **({"stored": stored} if stored is not None else {}),
    }


def batch_asset_extra(outcomes: Sequence[ItemOutcome], model: str, *, stored: bool) -> dict[str, Any]:
    """An asset event's extra for a batch: a single task's keys (``stored`` or ``kie_urls``, ``model``,
    ``credits_consumed``) plus the items'."""
    made = [o for o in outcomes if o.succeeded]
    return {
        "kie_task_ids": [o.kie_task_id for o in made],
        "model": model,
        "kind": models.kind_of(model),
        "credits_consumed": sum(o.credits_consumed or 0 for o in outcomes),
        "stored" if stored else "kie_urls": [uri for o in made for uri in o.result],
        "failed_items": [o.index for o in outcomes if not o.succeeded],
    }


def event_result(context: Any, event: KieTaskEvent, conn_id: str, **store: Any) -> list[str]:
    """What ``execute_complete`` returns for a KieTaskTrigger event, or the error it raises."""
    if event.status in (EventStatus.SUCCESS, EventStatus.FAILED) and event.task is not None:
        return task_result(context, event.task, stored=event.stored, **store)
    raise_for(event.as_error(conn_id=conn_id))


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
