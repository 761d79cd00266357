"""OpenLineage facets of a Kie task: the images that went in, the files that came out, and what ran.

Imported only when the OpenLineage provider extracts lineage from a Kie operator, so the provider does
not depend on OpenLineage. Dataset names follow OpenLineage's naming: ``file`` + absolute path for a
local file, ``{scheme}://{bucket}`` + key for object storage, ``{scheme}://{host}`` + path for a URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from airflow.providers.openlineage.extractors import OperatorLineage
from attrs import define
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import RunFacet

from airflow_provider_kie import models
from airflow_provider_kie.api import KieTask
from airflow_provider_kie.events import ItemOutcome


@define
class KieTaskRunFacet(RunFacet):
    """The Kie task behind an Airflow task run: model, Kie task id, final state and credits spent."""

    model: str
    kieTaskId: str  # facet fields are camelCase in OpenLineage
    state: str
    creditsConsumed: float | None = None
    kind: str | None = None  # image, video or audio, by the model's catalog entry


@define
class KieBatchRunFacet(RunFacet):
    """The Kie tasks of a batch: model, items, how many succeeded, their Kie task ids and credits spent."""

    model: str
    items: int
    succeeded: int
    kieTaskIds: list[str]
    creditsConsumed: float
    kind: str | None = None


def dataset(ref: Any) -> Dataset:
    """A file or URL (str or ObjectStoragePath) as an OpenLineage dataset."""
    if hasattr(ref, "protocol") and hasattr(ref, "key"):  # an ObjectStoragePath
        if ref.protocol in ("file", "local"):
            return Dataset(namespace="file", name="/" + ref.key)
        return Dataset(namespace=ref.namespace, name=ref.key)
    text = str(ref)
    if text.startswith("/"):
        return Dataset(namespace="file", name=text)
    parts = urlsplit(text)
    if parts.scheme == "file":
        return Dataset(namespace="file", name=parts.path)
    host = parts.hostname or ""  # never the user part: it may hold a connection id
    if parts.port:
        host = f"{host}:{parts.port}"
    return Dataset(namespace=f"{parts.scheme}://{host}", name=parts.path.lstrip("/") or "/")


def operator_lineage(task: KieTask | None, inputs: list[Any], outputs: list[str]) -> OperatorLineage:
    run_facets: dict[str, Any] = {}
    if task is not None:
        run_facets["kie_task"] = KieTaskRunFacet(
            model=task.model or "",
            kieTaskId=task.kie_task_id,
            state=task.state.value,
            creditsConsumed=None if task.credits_consumed is None else float(task.credits_consumed),
            kind=models.kind_of(task.model),
        )
    return OperatorLineage(
        inputs=[dataset(ref) for ref in inputs],
        outputs=[dataset(ref) for ref in outputs],
        run_facets=run_facets,
    )


def batch_lineage(model: str, inputs: list[Any], outcomes: list[ItemOutcome]) -> OperatorLineage:
    """Lineage of a batch: every distinct input, every result made, and a ``kie_batch`` run facet."""
    made = [o for o in outcomes if o.succeeded]
    facet = KieBatchRunFacet(
        model=model,
        items=len(outcomes),
        succeeded=len(made),
        kieTaskIds=[o.kie_task_id for o in outcomes if o.kie_task_id],
        creditsConsumed=float(sum(o.credits_consumed or 0 for o in outcomes)),
        kind=models.kind_of(model),
    )
    distinct = list(dict.fromkeys(str(ref) for ref in inputs))
    return OperatorLineage(
        inputs=[dataset(ref) for ref in distinct],
        outputs=[dataset(uri) for o in made for uri in o.result],
        run_facets={"kie_batch": facet} if outcomes else {},
    )
