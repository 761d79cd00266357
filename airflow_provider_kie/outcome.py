"""Turn a finished Kie task, or a trigger event about one, into XCom and a return value, or an error."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_kie.api import KieTask, TaskState
from airflow_provider_kie.exceptions import KieError, KieTaskFailedError, KieTimeoutError
from airflow_provider_kie.links import KieResultLink, result_link

XCOM_TASK_ID = "kie_task_id"
XCOM_TASK = "kie_task"
# When a trigger created the Kie task: the deadline it set (epoch seconds), for a restarted triggerer.
XCOM_TASK_DEADLINE = "kie_task_deadline"


def task_result(context: Any, task: KieTask) -> list[str]:
    """Push the ``kie_task`` record; return the result URLs, or raise if the task failed.

    The URLs are also kept on the operator (``kie_result_urls``) for its result link.
    """
    context["ti"].xcom_push(key=XCOM_TASK, value=task.to_dict())
    if "task" in context:
        context["task"].kie_result_urls = list(task.result_urls)
    if task.state is TaskState.FAIL:
        raise KieTaskFailedError(
            f"the task failed with failCode {task.fail_code!r}: {task.fail_msg or 'no failMsg'}",
            task_id=task.task_id,
            fail_code=task.fail_code,
            operation="task",
        )
    return list(task.result_urls)


def success_xcoms(record: dict[str, Any]) -> dict[str, Any]:
    """Every XCom a worker leaves after a success, for a trigger that ends the task itself."""
    urls = record["result_urls"]
    xcoms = {"return_value": urls, XCOM_TASK: record}
    link_key = getattr(KieResultLink(), "xcom_key", None)  # Airflow 3 stores rendered links in XCom
    if link_key:
        xcoms[link_key] = result_link(urls)
    return xcoms


def event_result(context: Any, event: dict[str, Any], conn_id: str) -> list[str]:
    """What ``execute_complete`` returns for a KieTaskTrigger event."""
    status = event.get("status")
    if status in ("success", "failed"):
        return task_result(context, KieTask.from_dict(event["task"]))
    if status == "timeout":
        raise_for(KieTimeoutError(str(event.get("message", "timed out")), task_id=event.get("task_id")))
    raise_for(
        KieError.from_event(event.get("error") or {"message": f"unexpected event {event!r}"}, conn_id=conn_id)
    )
    raise AssertionError("unreachable")  # pragma: no cover


def raise_for(error: KieError) -> None:
    """Raise ``error`` so that Airflow retries only what a retry can fix.

    Auth, credits, validation, an ambiguous create, a passed deadline: retrying would fail again (or pay
    twice), so the task fails at once. A failed generation or a transient error keep the task's retries.
    """
    if isinstance(error, KieTimeoutError) or not (error.retryable or isinstance(error, KieTaskFailedError)):
        raise AirflowFailException(str(error)) from error
    raise error
