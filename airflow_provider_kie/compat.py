"""What the provider knows about Airflow's versions, in one place: each version probe, each use of an
Airflow API that is not public, and each workaround of an Airflow bug (with its issue and the version
that fixes it, where one does). Nothing else in the package probes Airflow's version.

Public Airflow names come through ``airflow.providers.common.compat.sdk``; this module holds what
common-compat does not cover.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from airflow import __version__ as _airflow_version
from packaging.version import Version

AIRFLOW_VERSION = Version(Version(_airflow_version).base_version)


def airflow_at_least(version: str) -> bool:
    return Version(version) <= AIRFLOW_VERSION


try:  # Airflow 3: a trigger reads and writes XCom through the Task SDK (not a public API of triggers)
    from airflow.sdk.execution_time.xcom import XCom as TriggerXCom
except ImportError:  # Airflow 2
    TriggerXCom = None

#: Whether a trigger can keep what it did in XCom itself (Airflow 3). Creating a Kie task in the
#: triggerer needs it: the task id must survive a triggerer restart, or the next run would create again.
TRIGGER_WRITES_XCOM = TriggerXCom is not None and hasattr(TriggerXCom, "aset")

#: Whether Airflow starts a task in the triggerer (``start_from_trigger``) and renders its templates
#: there: from 3.3 (3.0 to 3.2 ran such tasks on a worker).
TRIGGER_STARTS_TASKS = TRIGGER_WRITES_XCOM and airflow_at_least("3.3")


def start_trigger_args(trigger_cls: str, trigger_kwargs: dict[str, Any]) -> Any:
    """What starts a task in the triggerer (``start_from_trigger``), resuming ``execute_complete``."""
    from airflow.triggers.base import StartTriggerArgs

    return StartTriggerArgs(
        trigger_cls=trigger_cls,
        next_method="execute_complete",
        trigger_kwargs=trigger_kwargs,
        next_kwargs=None,
        timeout=None,
    )


#: Why a mapped task started on a worker: Airflow 3.3 starts no mapped task in the triggerer.
MAPPED_TASKS_START_ON_WORKERS = "Airflow 3.3 starts no mapped task in the triggerer (apache/airflow#52141)"

#: The module of Airflow's trigger runner (Airflow 2 and 3): a process that imported it runs triggers.
TRIGGER_RUNNER_MODULE = "airflow.jobs.triggerer_job_runner"

#: The least time between a worker's deferral and the event that resumes it. Airflow's scheduler fails a
#: resumed task if it handles the deferring worker's exit only after it queued the task again
#: (apache/airflow#67287, #72716: open in 3.3.2); seconds after a deferral that exit is handled.
RESUME_SETTLE_SECONDS = 15.0


def resume_not_before() -> float:
    """For a trigger a worker defers to now: the earliest time its event may resume a worker."""
    return time.time() + RESUME_SETTLE_SECONDS


async def settle_before_resume(trigger: Any, not_before: float | None) -> None:
    """Hold an event that resumes a worker until ``not_before`` (only in a triggerer: ``dags test`` runs
    no scheduler to race with)."""
    delay = (not_before or 0) - time.time()
    if delay > 0 and trigger.task_instance is not None:
        trigger.log.info("Resuming the task in %.0f s, once Airflow has handled the deferral", delay)
        await asyncio.sleep(delay)


# XCom of the Airflow task a trigger runs for. Without one (a trigger run by hand, or Airflow 2) nothing
# is kept: push_xcoms says so, and pull_xcom finds nothing.
def _xcom_target(ti: Any) -> dict[str, Any] | None:
    if not TRIGGER_WRITES_XCOM or ti is None:
        return None
    return {"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id, "map_index": ti.map_index}


async def push_xcoms(ti: Any, values: Mapping[str, Any], *, in_thread: bool = False) -> bool:
    """Write ``values`` to the XCom of ``ti`` from the triggerer; False if a trigger cannot (Airflow 2).

    ``in_thread``: serialize each value in a thread first. The Task SDK's ``XCom.aset`` serializes on
    the event loop (Airflow 3.3.2; no upstream issue yet), walking every element in Python: for a
    batch's thousands of outcomes, long enough to block the triggerer's other triggers."""
    target = _xcom_target(ti)
    if target is None:
        return False
    for key, value in values.items():
        if in_thread:
            serialized = await asyncio.to_thread(TriggerXCom.serialize_value, value=value, key=key, **target)
            await PreserializedTriggerXCom.aset(key, serialized, **target)
        else:
            await TriggerXCom.aset(key, value, **target)
    return True


#: TriggerXCom for a value push_xcoms has serialized already.
PreserializedTriggerXCom: Any = (
    None
    if TriggerXCom is None
    else type(
        "PreserializedTriggerXCom",
        (TriggerXCom,),
        {"serialize_value": staticmethod(lambda value, **_: value)},
    )
)


async def pull_xcom(ti: Any, key: str) -> Any:
    target = _xcom_target(ti)
    return None if target is None else await TriggerXCom.aget_one(key=key, **target)


def xcom_store(ti: Any) -> tuple[Any, Any]:
    """``load(key)`` and ``save(key, value)`` over the XCom of ``ti`` from the triggerer, as a
    :class:`~airflow_provider_kie.ledger.BatchLedger` keeps its record."""

    async def load(key: str) -> Any:
        return await pull_xcom(ti, key)

    async def save(key: str, value: Any) -> bool:
        return await push_xcoms(ti, {key: value})

    return load, save


async def end_task_in_triggerer(ti: Any, xcoms: Mapping[str, Any]) -> Any:
    """The event that ends ``ti`` from the triggerer with ``xcoms``, pushed like a worker would: Airflow
    3.3's ``TaskSuccessEvent(xcoms=...)`` would store each value JSON-encoded twice, and a downstream
    task would read a string."""
    from airflow.triggers.base import TaskSuccessEvent

    if await push_xcoms(ti, xcoms, in_thread=True):
        return TaskSuccessEvent()
    return TaskSuccessEvent(xcoms=dict(xcoms))


def trigger_lists_variables() -> bool:
    """Whether a trigger can list Variable keys (the Task SDK's ``Variable.keys``, from 3.3)."""
    try:
        from airflow.sdk import Variable
    except ImportError:
        return False
    return hasattr(Variable, "keys")


def listeners_registered() -> bool:
    """Whether Airflow listeners (OpenLineage among them) are registered in this process."""
    try:
        from airflow.sdk.listener import get_listener_manager
    except ImportError:  # Airflow 2
        from airflow.listeners.listener import get_listener_manager as airflow2_listener_manager

        return bool(airflow2_listener_manager().has_listeners)
    return bool(get_listener_manager().has_listeners)


def link_xcom_key(link: Any) -> str | None:
    """Where Airflow 3 keeps an extra link's rendered URL in XCom; None on Airflow 2 (rendered on demand)."""
    return getattr(link, "xcom_key", None)


def first_reschedule_time(context: Any) -> float | None:
    """When a rescheduled sensor first poked (epoch seconds); None where a task cannot ask (Airflow 2)."""
    ti = context["ti"]
    first = ti.get_first_reschedule_date(context) if hasattr(ti, "get_first_reschedule_date") else None
    return None if first is None else first.timestamp()


def metadata() -> Any:
    """The metadata database as the provider's API-server plugin reads it (the callback receiver, the
    results tab): Airflow's models and a session, none of them a public API of Airflow."""
    from types import SimpleNamespace

    from airflow.models.connection import Connection
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.variable import Variable
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    return SimpleNamespace(
        session=create_session,
        Connection=Connection,
        RenderedTaskInstanceFields=RenderedTaskInstanceFields,
        TaskInstance=TaskInstance,
        Variable=Variable,
        XComModel=XComModel,
    )


def dag_readers() -> Any:
    """The API server's dependency that lets through only users who may read a DAG's XCom."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends

    return Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.XCOM))
