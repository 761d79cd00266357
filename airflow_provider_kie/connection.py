"""A ``kie`` connection written as the JSON that ``AIRFLOW_CONN_<ID>`` takes (hooks/kie.py reads one)."""

from __future__ import annotations

import json
from typing import Any

#: The connection id every Kie hook, operator, sensor and trigger uses unless told another.
DEFAULT_CONN_ID = "kie_default"


def connection_json(api_key: str | None, host: str | None = None, **extra: Any) -> str:
    """``{"conn_type": "kie", "password": api_key, "host": host, "extra": {...}}``, omitting what is None."""
    conn: dict[str, Any] = {"conn_type": "kie"}
    if api_key is not None:
        conn["password"] = api_key
    if host is not None:
        conn["host"] = host
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)
