"""OpenLineage facets of a task's Kie jobs: the files that went in, the files that came out, and what ran.

Imported only when the OpenLineage provider extracts lineage from a Kie operator, so the provider does
not depend on OpenLineage. Dataset names follow OpenLineage's naming: ``file`` + absolute path for a
local file, ``{scheme}://{bucket}`` + key for object storage, ``{scheme}://{host}`` + path for a URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.openlineage.extractors import OperatorLineage
from attrs import define
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import RunFacet

from airflow_provider_kie import models
from airflow_provider_kie.events import JobOutcome


@define
class KieJobsRunFacet(RunFacet):
    """The Kie jobs behind an Airflow task run: the model and what it makes, how many jobs and how many
    succeeded, and each job's Kie task id, state and the credits spent (facet fields are camelCase)."""

    model: str
    jobs: int
    succeeded: int
    kieTaskIds: list[str]
    states: list[str]
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


def jobs_lineage(model: str, inputs: Sequence[Any], outcomes: Sequence[JobOutcome]) -> OperatorLineage:
    """Every distinct input as given, every result made, and a ``kie_jobs`` run facet once jobs ended."""
    facet = KieJobsRunFacet(
        model=model,
        jobs=len(outcomes),
        succeeded=sum(o.succeeded for o in outcomes),
        kieTaskIds=[o.kie_task_id for o in outcomes if o.kie_task_id],
        states=[o.state or o.status.value for o in outcomes],
        creditsConsumed=float(sum(o.credits_consumed or 0 for o in outcomes)),
        kind=models.kind_of(model),
    )
    return OperatorLineage(
        inputs=[dataset(ref) for ref in dict.fromkeys(str(ref) for ref in inputs)],
        outputs=[dataset(uri) for o in outcomes if o.succeeded for uri in o.result],
        run_facets={"kie_jobs": facet} if outcomes else {},
    )
