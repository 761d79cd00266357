"""What a Kie job family is, declared once: where its jobs are created and read, the body it takes, how
its replies become a task id and a :class:`~airflow_provider_kie.api.KieTask`, and where a callback
names the task. The engine, the hooks and the receiver reach a family only through
:class:`JobFamily`, so a family is data plus a small adapter here, never a copy of the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_kie import api
from airflow_provider_kie.api import KieTask


@dataclass(frozen=True)
class JobFamily:
    """One Kie API family: its paths, the query key its record is read by, and its reply readers."""

    name: str
    create_path: str
    record_path: str
    record_query: str
    #: The create body from a model, its input and a callback URL.
    body: Callable[[str, Mapping[str, Any], str | None], dict[str, Any]]
    #: The new task's id from the create reply's ``data``.
    task_id: Callable[[Any], str]
    #: The task from a record reply's ``data`` (or a callback's).
    record: Callable[[Any], KieTask]


def market_body(model: str, model_input: Mapping[str, Any], callback_url: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model}
    if callback_url is not None:
        body["callBackUrl"] = callback_url
    body["input"] = dict(model_input)
    return body


MARKET = JobFamily(
    name="market",
    create_path=api.CREATE_TASK_PATH,
    record_path=api.RECORD_INFO_PATH,
    record_query="taskId",
    body=market_body,
    task_id=api.parse_task_id,
    record=api.parse_task,
)

FAMILIES = {family.name: family for family in (MARKET,)}


def family(name: str) -> JobFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown Kie job family {name!r}; families: {', '.join(FAMILIES)}") from None
