"""A Kie connection's settings: parsed and checked from an Airflow connection of type ``kie`` (every
extra named in a clear error), and cached for the async hooks of a process."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_kie import __version__, api
from airflow_provider_kie.callbacks import CallbackTarget
from airflow_provider_kie.exceptions import KieAuthError, KieInputError
from airflow_provider_kie.hooks import ratelimit

USER_AGENT = f"airflow-provider-kie/{__version__}"
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class KieConnectionSettings:
    """What a hook needs from an Airflow connection of type ``kie``."""

    conn_id: str
    api_key: str = field(repr=False)
    base_url: str = api.DEFAULT_BASE_URL
    upload_base_url: str = api.DEFAULT_UPLOAD_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    rate_limits: tuple[tuple[str, int, float], ...] = tuple(
        (k, *v) for k, v in ratelimit.DEFAULT_LIMITS.items()
    )
    rate_share: float = 1.0
    sharing_processes: int = 1
    #: Public base URL of the Airflow API server: when set, tasks created through this connection ask
    #: Kie to call the provider's ``/kie`` plugin there as they end (docs/callbacks.md).
    callback_base_url: str | None = None
    #: Kie's webhook HMAC key: the plugin then accepts only callbacks Kie signed, recently, once.
    webhook_secret: str | None = field(default=None, repr=False)
    #: Where Kie's doc pages are read when the catalog refuses an input (None: ``KIE_DOCS_URL``, else
    #: https://docs.kie.ai; docs/models.md).
    docs_url: str | None = None
    # Each call asks for its limiter: found once per settings (the key's hash is not free).
    _limiters: dict[str, ratelimit.SlidingWindowLimiter | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_connection(cls, conn: Any) -> KieConnectionSettings:
        conn_id = conn.conn_id
        api_key = (conn.password or "").strip()
        if not api_key:
            raise KieAuthError(
                "the connection has no API key: set its password to a key from https://kie.ai/api-key",
                conn_id=conn_id,
            )
        _mask(api_key)
        extra = conn.extra_dejson or {}
        timeout = extra.get("timeout", DEFAULT_TIMEOUT)
        try:
            timeout = float(timeout)
        except (TypeError, ValueError):
            timeout = -1.0
        if timeout <= 0:
            raise KieInputError(
                "timeout", f"extra 'timeout' of connection {conn_id!r} must be a positive number"
            )
        webhook_secret = extra.get("webhook_secret") or None
        if webhook_secret is not None:
            if not isinstance(webhook_secret, str):
                raise KieInputError(
                    "webhook_secret",
                    f"extra of connection {conn_id!r} must be a string (Kie's webhook HMAC key)",
                )
            _mask(webhook_secret)
        return cls(
            conn_id=conn_id,
            api_key=api_key,
            callback_base_url=_http_base_url(conn_id, "callback_base_url", extra.get("callback_base_url")),
            docs_url=_http_base_url(conn_id, "docs_url", extra.get("docs_url")),
            webhook_secret=webhook_secret,
            base_url=_base_url(conn.host, conn.schema, conn.port) or api.DEFAULT_BASE_URL,
            upload_base_url=str(extra.get("upload_base_url") or api.DEFAULT_UPLOAD_BASE_URL).rstrip("/"),
            timeout=timeout,
            rate_limits=_rate_limits(conn_id, extra.get("rate_limits", ratelimit.DEFAULT_LIMITS)),
            rate_share=_extra_number(
                conn_id, extra, "rate_share", 1.0, lambda v: 0 < v <= 1, "a number above 0 and at most 1"
            ),
            sharing_processes=int(
                _extra_number(
                    conn_id,
                    extra,
                    "sharing_processes",
                    1,
                    lambda v: v >= 1 and v == int(v),
                    "a whole number from 1",
                )
            ),
        )

    @property
    def cache_key(self) -> tuple[Any, ...]:
        """Identifies what a shared session depends on, without holding the key itself."""
        return (self.conn_id, self.base_url, ratelimit.fingerprint(self.api_key), self.timeout)

    def limiter(self, operation: str) -> ratelimit.SlidingWindowLimiter | None:
        if operation not in self._limiters:
            self._limiters[operation] = self._find_limiter(operation)
        return self._limiters[operation]

    def _find_limiter(self, operation: str) -> ratelimit.SlidingWindowLimiter | None:
        kind = _LIMITED_OPERATIONS.get(operation)
        configured = {name: (limit, window) for name, limit, window in self.rate_limits}
        if kind is None:
            return None
        return ratelimit.limiter_for(
            self.base_url,
            self.api_key,
            kind,
            configured,
            share=self.rate_share,
            processes=self.sharing_processes,
        )

    def callback_url(self, target: CallbackTarget | None) -> str | None:
        """The plugin's URL for ``target`` when this connection has ``callback_base_url``."""
        if target is None or self.callback_base_url is None:
            return None
        return target.url(self.callback_base_url, self.api_key)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT}


_LIMITED_OPERATIONS = {api.CREATE_TASK: "createTask", api.GET_TASK: "recordInfo"}


def _rate_limits(conn_id: str, value: Any) -> tuple[tuple[str, int, float], ...]:
    """Extra ``rate_limits``: ``{"createTask": [20, 10], "recordInfo": [10, 1]}``; ``{}`` turns them off."""
    if not isinstance(value, Mapping):
        raise KieInputError(
            "rate_limits",
            f"extra of connection {conn_id!r} must be an object like {ratelimit.DEFAULT_LIMITS}",
        )
    parsed = []
    for kind, pair in value.items():
        if kind not in ratelimit.DEFAULT_LIMITS or not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise KieInputError(
                "rate_limits",
                f"expected {{kind: [calls, seconds]}} with kind in {list(ratelimit.DEFAULT_LIMITS)}, got {value!r}",
            )
        calls, seconds = pair
        if not isinstance(calls, int) or calls < 1 or not isinstance(seconds, (int, float)) or seconds <= 0:
            raise KieInputError("rate_limits", f"{kind} needs a positive call count and window, got {pair!r}")
        parsed.append((kind, calls, float(seconds)))
    return tuple(parsed)


_BASE_URLS = {
    "callback_base_url": "the http(s) base URL Kie can reach the Airflow API server at, like https://airflow.example.com",
    "docs_url": "the http(s) base URL of Kie's doc pages, like https://docs.kie.ai",
}


def _http_base_url(conn_id: str, name: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise KieInputError(
            name, f"extra of connection {conn_id!r} must be {_BASE_URLS[name]}, got {value!r}"
        )
    return value.rstrip("/")


def _extra_number(
    conn_id: str, extra: Mapping[str, Any], name: str, default: float, valid: Any, allowed: str
) -> float:
    value = extra.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not valid(value):
        raise KieInputError(name, f"extra of connection {conn_id!r} must be {allowed}, got {value!r}")
    return float(value)


def _base_url(host: str | None, schema: str | None, port: int | None) -> str | None:
    if not host:
        return None
    host = host.strip().rstrip("/")
    if "://" not in host:
        # The UI keeps only a host name when the scheme is missing; Kie and proxies speak https.
        host = f"https://{host}"
    if port and host.count(":") < 2:
        host = f"{host}:{port}"
    return host


def _mask(secret: str) -> None:
    from airflow.providers.common.compat.sdk import mask_secret

    mask_secret(secret)


#: How long the settings of a connection, once read, serve every async hook of the process: a
#: triggerer's thousand waiting triggers look the connection up once, not a thousand times.
SETTINGS_TTL_SECONDS = 30.0
_settings_cache: dict[tuple[str, str | None], tuple[float, KieConnectionSettings]] = {}
_settings_lookups: dict[tuple[Any, ...], asyncio.Future[KieConnectionSettings]] = {}


async def shared_settings(conn_id: str) -> KieConnectionSettings:
    """The connection's settings, read at most once per :data:`SETTINGS_TTL_SECONDS` per process (and
    once for every hook that asks while a lookup is under way). A connection given as an environment
    variable is read again as soon as the variable changes."""
    key = (conn_id, os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"))
    cached = _settings_cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    loop_key = (id(asyncio.get_running_loop()), *key)
    lookup = _settings_lookups.get(loop_key)
    if lookup is None:
        lookup = _settings_lookups[loop_key] = asyncio.ensure_future(read_settings(conn_id))
        lookup.add_done_callback(lambda _: _settings_lookups.pop(loop_key, None))
    settings = await asyncio.shield(lookup)  # one waiter cancelled does not cancel the others' lookup
    _settings_cache[key] = (time.monotonic() + SETTINGS_TTL_SECONDS, settings)
    return settings


async def read_settings(conn_id: str) -> KieConnectionSettings:
    from airflow.providers.common.compat.connection import get_async_connection

    return KieConnectionSettings.from_connection(await get_async_connection(conn_id))
