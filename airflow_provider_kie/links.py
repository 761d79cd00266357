"""Operator extra links."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom


class KieResultLink(BaseOperatorLink):
    """ "Kie result": the first result URL of the try (Kie keeps results about 24 hours)."""

    name = "Kie result"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        record = XCom.get_value(ti_key=ti_key, key="kie_task")
        urls = record.get("result_urls") if isinstance(record, dict) else None
        return urls[0] if urls else ""
