"""KieTaskTrigger: the trigger of 0.1.0, deprecated. A task 0.1.0 deferred still runs it after an upgrade
(its kwargs are in Airflow's database); it runs as :class:`~airflow_provider_kie.triggers.jobs.KieJobsTrigger`."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

from airflow_provider_kie.events import Job, JobRecord, JobRef
from airflow_provider_kie.triggers.jobs import KieJobsTrigger


class KieTaskTrigger(KieJobsTrigger):
    """Deprecated: use :class:`~airflow_provider_kie.triggers.jobs.KieJobsTrigger`. Takes 0.1.0's arguments:
    a Kie task to wait for (``kie_task_id``, ``deadline``), or a createTask body to create it from
    (``create``, ``timeout``); what a 0.1.0 run of it kept in XCom is read, so it never creates twice."""

    def __init__(
        self,
        kie_task_id: str | None = None,
        deadline: float | None = None,
        kie_conn_id: str = "kie_default",
        poll_policy: Mapping[str, Any] | None = None,
        end_from_trigger: bool = False,
        *,
        create: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        retry_ambiguous_create: bool = False,
    ) -> None:
        warnings.warn(
            "KieTaskTrigger is deprecated: use airflow_provider_kie.triggers.jobs.KieJobsTrigger",
            DeprecationWarning,
            stacklevel=2,
        )
        if (kie_task_id is None) == (create is None):
            raise ValueError("KieTaskTrigger needs either kie_task_id (and deadline) or create (and timeout)")
        record = JobRecord({0: JobRef(kie_task_id, float(deadline or time.time()))}) if kie_task_id else None
        super().__init__(
            jobs=[Job(dict(create or {}))],
            timeout=float(timeout or 0.0),
            record=record,
            kie_conn_id=kie_conn_id,
            poll_policy=poll_policy,
            retry_ambiguous_create=retry_ambiguous_create,
            end_from_trigger=end_from_trigger,
            single=True,
            model=str((create or {}).get("model") or ""),
            legacy=create is not None,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{KieJobsTrigger.__module__}.{KieJobsTrigger.__qualname__}", kwargs
