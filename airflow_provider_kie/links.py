"""Operator extra links."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from airflow_provider_kie.compat import link_xcom_key


class KieResultLink(BaseOperatorLink):
    """ "Kie result": the first result URL of the try (Kie keeps results about 24 hours)."""

    name = "Kie result"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if hasattr(operator, "kie_result_urls"):
            # Airflow 3 asks the operator that just ran, in its worker, including when it only deferred:
            # reading XCom then would log an error for a result that cannot exist yet.
            return result_link(operator.kie_result_urls)
        # Airflow 2's webserver asks with the serialized operator: read the try's record.
        record = XCom.get_value(ti_key=ti_key, key="kie_task")
        return result_link(record.get("result_urls") if isinstance(record, dict) else None)


def result_link(urls: Sequence[str] | None) -> str:
    return urls[0] if urls else ""


def link_xcoms(urls: Sequence[str] | None) -> dict[str, str]:
    """The rendered link as the XCom a worker's finalize leaves on Airflow 3 (Airflow 2 renders links on
    demand): what a task that ends in the triggerer must leave too."""
    return {LINK_XCOM_KEY: result_link(urls)} if LINK_XCOM_KEY else {}


LINK_XCOM_KEY = link_xcom_key(KieResultLink())
