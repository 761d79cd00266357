"""Hooks for Kie.ai: the connection, auth, transport and retries. Replies are parsed by ``api.py``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, Protocol

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_kie import api, families, get_provider_info, models
from airflow_provider_kie.api import KieTask
from airflow_provider_kie.callbacks import CallbackTarget
from airflow_provider_kie.connection import DEFAULT_CONN_ID
from airflow_provider_kie.events import Job
from airflow_provider_kie.exceptions import (
    KieAmbiguousCreateError,
    KieConnectionError,
    KieError,
    KieInputError,
    KieNotSentError,
    KieRateLimitError,
    KieValidationError,
)
from airflow_provider_kie.hooks import ratelimit, sessions
from airflow_provider_kie.hooks.settings import KieConnectionSettings, shared_settings

# requests and aiohttp are imported where used: a deferrable task's worker run only validates and
# defers, and every task process parses the DAG file, so a third of a second of imports adds up.
if TYPE_CHECKING:
    import aiohttp
    import requests


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter; a longer ``Retry-After`` wins, up to ``max_retry_after``.

    A 429 creates nothing, so rate-limited calls keep retrying past ``max_attempts`` until
    ``rate_limited_budget`` seconds have passed: a burst of workers sharing one key waits its turn.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    rate_limited_budget: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise KieInputError("max_attempts", f"must be at least 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise KieInputError("base_delay", "delays must not be negative")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        jittered = random.uniform(backoff / 2, backoff)
        return max(jittered, min(retry_after, self.max_retry_after)) if retry_after else jittered


DEFAULT_RETRY_POLICY = RetryPolicy()


@dataclass
class _Attempts:
    """The attempts of one call to Kie: what each retry decision needs."""

    operation: str
    limiter: ratelimit.SlidingWindowLimiter | None
    started: float = field(default_factory=time.monotonic)
    count: int = 0
    sent_at: float = 0.0

    def waits(self) -> Iterator[float]:
        """The sleeps before the next attempt may leave (the key's limiter); then it counts as sent."""
        self.count += 1
        if self.limiter is not None:
            yield from self.limiter.waits()
        self.sent_at = time.monotonic()

    def landed(self) -> None:
        """The attempt's reply arrived, or it failed: the limiter counts it from now."""
        if self.limiter is not None:
            self.limiter.landed()


class SendClaim(Protocol):
    """Told by :meth:`KieAsyncHook.create_task` what became of each attempt (see the trigger's claim)."""

    async def sending(self) -> None: ...

    async def not_sent(self) -> None: ...


class _KieHookBase(BaseHook):
    conn_name_attr = "kie_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "kie"
    hook_name = "Kie.ai"

    def __init__(
        self,
        kie_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
        retry_ambiguous_create: bool = False,
    ) -> None:
        super().__init__()
        self.kie_conn_id = kie_conn_id
        self.retry_policy = retry_policy or DEFAULT_RETRY_POLICY
        self.retry_ambiguous_create = retry_ambiguous_create

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kie_conn_id={self.kie_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form declared in the provider info, for Airflow 2 which reads it from the hook."""
        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }

    def _retry_delay(self, error: KieError, attempts: _Attempts) -> float:
        """Seconds to wait before the next attempt; raises ``error`` (or why) when giving up. A 429 also
        tells the key's limiter in this process to take less of Kie's limit."""
        operation, limiter = attempts.operation, attempts.limiter
        error.conn_id = self.kie_conn_id
        if (
            isinstance(error, KieRateLimitError)
            and limiter is not None
            and limiter.throttled(attempts.sent_at, error.retry_after)
        ):
            self.log.warning(
                "Kie %s rate limited: the key's window is full (other processes or clients use the key); "
                "this process now sends at most %d per %g s",
                operation,
                limiter.limit,
                round(limiter.window - ratelimit.SLACK_SECONDS, 3),
            )
        if operation == api.CREATE_TASK and error.may_have_created_task and not self.retry_ambiguous_create:
            raise KieAmbiguousCreateError(
                f"the request may have reached Kie, so a task may exist and be billed, but its reply was "
                f"lost ({error.message}); it was not resent",
                operation=operation,
                conn_id=self.kie_conn_id,
                code=error.code,
                http_status=error.http_status,
            ) from error
        patient = (
            isinstance(error, KieRateLimitError)
            and time.monotonic() - attempts.started < self.retry_policy.rate_limited_budget
        )
        attempt = attempts.count
        if not error.retryable or (attempt >= self.retry_policy.max_attempts and not patient):
            raise error
        delay = self.retry_policy.delay(min(attempt, self.retry_policy.max_attempts), error.retry_after)
        if patient:
            self.log.warning("Kie %s rate limited (%s); retrying in %.1f s", operation, error.message, delay)
        else:
            self.log.warning(
                "Kie %s failed (%s); attempt %d of %d, retrying in %.1f s",
                operation,
                error.message,
                attempt,
                self.retry_policy.max_attempts,
                delay,
            )
        return delay


class KieHook(_KieHookBase):
    """Synchronous Kie client on ``requests`` with one pooled session.

    :param kie_conn_id: connection of type ``kie``; the API key is its password.
    :param retry_policy: backoff for 429, 455, 5xx and connection errors.
    :param retry_ambiguous_create: resend a createTask whose reply was lost (may pay twice).
    """

    @cached_property
    def settings(self) -> KieConnectionSettings:
        return KieConnectionSettings.from_connection(self.get_connection(self.kie_conn_id))

    @cached_property
    def session(self) -> requests.Session:
        """The process-wide session of this connection (pooled connections, shared by all its hooks)."""

        def new_session() -> requests.Session:
            import requests

            session = requests.Session()
            session.headers.update(self.settings.headers)
            return session

        return sessions.shared_sync_session(self.settings.cache_key, new_session)

    def get_conn(self) -> requests.Session:
        return self.session

    def close(self) -> None:
        """Forget the session; it stays open for the process's other hooks of this connection."""
        self.__dict__.pop("session", None)

    def create_task(
        self,
        model: str,
        input: Mapping[str, Any],
        callback_url: str | None = None,
        *,
        callback_for: CallbackTarget | None = None,
        validate: models.Validate = True,
    ) -> str:
        """Submit one task (``POST /api/v1/jobs/createTask``) and return its ``taskId``. ``input`` is
        checked first: by the model's catalog entry, and what it refuses by Kie's current page
        (``validate="strict"``: the entry alone; False: sent as given; docs/models.md). Without a
        ``callback_url``, a connection with ``callback_base_url`` has Kie call the provider's plugin for
        ``callback_for``."""
        settings = self.settings
        callback_url = callback_url or settings.callback_url(callback_for)
        checked = models.checked_body(
            model, input, callback_url, validate=validate, docs_url=settings.docs_url
        )
        family = families.MARKET
        with _catalog_hint(model):
            data = self._request("POST", family.create_path, api.CREATE_TASK, json=checked.body)
        kie_task_id = family.task_id(data)
        models.accepted(model, checked.checked.unconfirmed)
        self.log.info("Created Kie task %s (model %s)", kie_task_id, model)
        return kie_task_id

    def get_task(self, kie_task_id: str, family: str = "market") -> KieTask:
        """Read one task (Market: ``GET /api/v1/jobs/recordInfo``)."""
        found = families.family(family)
        data = self._request("GET", found.record_path, api.GET_TASK, params={found.record_query: kie_task_id})
        return found.record(data)

    def get_credits(self) -> Decimal:
        return api.parse_credits(self._request("GET", api.CREDITS_PATH, api.GET_CREDITS))

    def get_download_url(self, url: str) -> str:
        """A direct link (valid 20 minutes) to a Kie-generated file."""
        data = self._request("POST", api.DOWNLOAD_URL_PATH, api.GET_DOWNLOAD_URL, json={"url": url})
        return api.parse_download_url(data)

    def upload_file(
        self,
        file: str | os.PathLike[str] | bytes | IO[bytes] | None = None,
        *,
        file_url: str | None = None,
        base64_data: str | None = None,
        upload_path: str = "airflow",
        file_name: str | None = None,
    ) -> str:
        """Upload a file to Kie's temporary storage and return its download URL.

        Give exactly one of ``file`` (a path, bytes or a binary file, sent to the stream endpoint as multipart/form-data), ``file_url`` (Kie
        fetches it) or ``base64_data`` (plain base64 or a ``data:`` URI).
        """
        given = [
            name
            for name, value in (("file", file), ("file_url", file_url), ("base64_data", base64_data))
            if value is not None
        ]
        if len(given) != 1:
            raise KieInputError(
                "file", f"give exactly one of file, file_url, base64_data (got {given or 'none'})"
            )
        upload_path = upload_path.strip("/")
        if not upload_path:
            raise KieInputError("upload_path", "must be a non-empty folder name such as 'airflow'")
        fields = {"uploadPath": upload_path, **({"fileName": file_name} if file_name else {})}
        base = self.settings.upload_base_url
        if file_url is not None:
            data = self._request(
                "POST", api.UPLOAD_URL_PATH, api.UPLOAD_FILE, base=base, json={"fileUrl": file_url, **fields}
            )
        elif base64_data is not None:
            data = self._request(
                "POST",
                api.UPLOAD_BASE64_PATH,
                api.UPLOAD_FILE,
                base=base,
                json={"base64Data": base64_data, **fields},
            )
        else:
            content, name = _read_file(file)
            data = self._request(
                "POST",
                api.UPLOAD_STREAM_PATH,
                api.UPLOAD_FILE,
                base=base,
                data=fields,
                files={"file": (file_name or name, content)},
            )
        return api.parse_upload(data)

    def test_connection(self) -> tuple[bool, str]:
        """Ask the credits endpoint; used by ``airflow connections test`` and the UI's Test button."""
        try:
            credits = self.get_credits()
        except KieError as error:
            return False, str(error)
        return True, f"Connected to Kie at {self.settings.base_url}: {credits} credits left"

    def _request(
        self, method: str, path: str, operation: str, *, base: str | None = None, **kwargs: Any
    ) -> Any:
        import requests

        url = f"{base or self.settings.base_url}{path}"
        attempts = _Attempts(operation, self.settings.limiter(operation))
        while True:
            for delay in attempts.waits():
                time.sleep(delay)
            try:
                try:
                    response = self.session.request(method, url, timeout=self.settings.timeout, **kwargs)
                finally:
                    attempts.landed()
                return api.parse_reply(
                    response.content,
                    http_status=response.status_code,
                    operation=operation,
                    retry_after=api.parse_retry_after(response.headers.get("Retry-After")),
                )
            except requests.RequestException as exc:
                error: KieError = _connection_error(exc, operation)
            except KieError as exc:
                error = exc
            time.sleep(self._retry_delay(error, attempts))


def _connection_error(exc: requests.RequestException, operation: str) -> KieConnectionError:
    import requests
    import urllib3.exceptions

    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    never_sent = isinstance(exc, requests.ConnectTimeout) or isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )
    return (KieNotSentError if never_sent else KieConnectionError)(
        f"{type(exc).__name__}: {exc}", operation=operation
    )


def _read_file(file: Any) -> tuple[bytes, str]:
    if isinstance(file, (bytes, bytearray)):
        return bytes(file), "upload.bin"
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as handle:
            return handle.read(), os.path.basename(os.fspath(file))
    if hasattr(file, "read"):
        return file.read(), os.path.basename(getattr(file, "name", "upload.bin"))
    raise KieInputError("file", f"must be a path, bytes or a binary file, got {type(file).__name__}")


#: The share of the connection's timeout that opening a connection may take.
CONNECT_SHARE = 0.9


async def _read(request: Any) -> tuple[Any, bytes]:
    async with request as response:
        return response, await response.read()


class KieAsyncHook(_KieHookBase):
    """Asynchronous Kie client on ``aiohttp``, for triggers: one ``ClientSession`` per hook.

    Use it as ``async with KieAsyncHook(...) as hook:`` or call :meth:`close` when done.
    """

    def __init__(self, kie_conn_id: str = _KieHookBase.default_conn_name, **kwargs: Any) -> None:
        super().__init__(kie_conn_id, **kwargs)
        self._settings: KieConnectionSettings | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KieAsyncHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def get_settings(self) -> KieConnectionSettings:
        if self._settings is None:
            self._settings = await shared_settings(self.kie_conn_id)
        return self._settings

    async def get_session(self) -> aiohttp.ClientSession:
        """The session this event loop shares for the connection: one for all triggers of a triggerer."""
        aiohttp = await sessions.load_aiohttp()
        settings = await self.get_settings()
        if self._session is None:  # checked after the await: coroutines of one hook (a batch) share it
            self._session = sessions.lease_async_session(
                settings.cache_key,
                lambda: aiohttp.ClientSession(
                    headers=settings.headers,
                    # The whole request's time is counted by within_running_time(); connecting keeps
                    # aiohttp's timer, a little shorter, so a request that never left says so.
                    timeout=aiohttp.ClientTimeout(total=None, connect=settings.timeout * CONNECT_SHARE),
                ),
            )
        return self._session

    async def close(self) -> None:
        """Release the shared session; the last hook of the event loop to release it closes it."""
        session, self._session = self._session, None
        if session is not None:
            await sessions.release_async_session(session)

    async def create_task(
        self,
        model: str,
        input: Mapping[str, Any],
        callback_url: str | None = None,
        *,
        claim: SendClaim | None = None,
        callback_for: CallbackTarget | None = None,
        validate: models.Validate = True,
    ) -> str:
        """The new task's id. ``claim`` is told as each attempt is about to leave (after the key's
        limiter let it; an exception from it stops the create with nothing sent) and when an attempt
        was answered without creating anything. ``callback_for`` and ``validate`` as in
        :meth:`KieHook.create_task` (a page read, when one is needed, runs in a thread)."""
        settings = await self.get_settings()
        # A page read, when the catalog refuses the input, runs in a thread.
        checked = await asyncio.to_thread(
            models.checked_body, model, input, callback_url, validate=validate, docs_url=settings.docs_url
        )
        job = Job(checked.body, unconfirmed=checked.checked.unconfirmed)
        return await self.create(job, claim=claim, callback_for=callback_for)

    async def create(
        self, job: Job, *, claim: SendClaim | None = None, callback_for: CallbackTarget | None = None
    ) -> str:
        """Create ``job``'s Kie task through its family, its body as given (validated where it was made);
        the new task's id. Values it sends unconfirmed that Kie takes count as allowed from then on."""
        settings = await self.get_settings()
        family = families.family(job.family)
        body = job.body
        if "callBackUrl" not in body and (url := settings.callback_url(callback_for)):
            body = {**body, "callBackUrl": url}
        with _catalog_hint(job.model):
            data = await self._request("POST", family.create_path, api.CREATE_TASK, json=body, claim=claim)
        kie_task_id = family.task_id(data)
        if job.unconfirmed:
            await asyncio.to_thread(models.accepted, job.model, job.unconfirmed)
        return kie_task_id

    async def get_task(self, kie_task_id: str, family: str = "market") -> KieTask:
        found = families.family(family)
        data = await self._request(
            "GET", found.record_path, api.GET_TASK, params={found.record_query: kie_task_id}
        )
        return found.record(data)

    async def get_credits(self) -> Decimal:
        return api.parse_credits(await self._request("GET", api.CREDITS_PATH, api.GET_CREDITS))

    async def _request(
        self,
        method: str,
        path: str,
        operation: str,
        claim: SendClaim | None = None,
        **kwargs: Any,
    ) -> Any:
        session = await self.get_session()
        aiohttp = await sessions.load_aiohttp()
        settings = await self.get_settings()
        url = f"{settings.base_url}{path}"
        attempts = _Attempts(operation, settings.limiter(operation))
        while True:
            for delay in attempts.waits():
                await asyncio.sleep(delay)
            if claim is not None:
                try:
                    await claim.sending()
                except BaseException:
                    attempts.landed()  # nothing left: the limiter's place is free again
                    raise
            try:
                try:
                    response, body = await sessions.within_running_time(
                        settings.timeout, _read(session.request(method, url, **kwargs))
                    )
                finally:
                    attempts.landed()
                return api.parse_reply(
                    body,
                    http_status=response.status,
                    operation=operation,
                    retry_after=api.parse_retry_after(response.headers.get("Retry-After")),
                )
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                never_sent = isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
                error: KieError = (KieNotSentError if never_sent else KieConnectionError)(
                    f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, operation=operation
                )
            except KieError as exc:
                error = exc
            delay = self._retry_delay(error, attempts)
            if claim is not None and not error.may_have_created_task:
                await claim.not_sent()
            await asyncio.sleep(delay)


@contextlib.contextmanager
def _catalog_hint(model: str | None) -> Iterator[None]:
    """Kie's refusal of a catalog model's input points at the model's page."""
    try:
        yield
    except KieValidationError as error:
        if model and not isinstance(error, KieInputError):
            error.message += models.rejected_hint(model)
        raise


def __getattr__(name: str) -> Any:
    # Names 0.1.0 had here; they live in hooks/settings.py now.
    if name in ("USER_AGENT", "DEFAULT_TIMEOUT", "KieConnectionSettings"):
        warnings.warn(
            f"airflow_provider_kie.hooks.kie.{name} moved to airflow_provider_kie.hooks.settings",
            DeprecationWarning,
            stacklevel=2,
        )
        from airflow_provider_kie.hooks import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
