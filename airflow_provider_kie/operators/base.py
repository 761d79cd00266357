"""What every Kie operator shares: the connection and its hook, the wait's poll policy and timeout,
the uploads of file inputs and the output folder's parameter."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseOperator, conf

from airflow_provider_kie import inputs, models
from airflow_provider_kie.connection import DEFAULT_CONN_ID
from airflow_provider_kie.exceptions import KieError, KieInputError
from airflow_provider_kie.waiting import PollPolicy

if TYPE_CHECKING:
    from airflow_provider_kie.hooks.kie import KieHook


class KieOperatorBase(BaseOperator):
    """The parameters every Kie operator takes (see :class:`~airflow_provider_kie.operators.kie.KieCreateTaskOperator`
    and :class:`~airflow_provider_kie.operators.batch.KieBatchOperator` for what each means there)."""

    def __init__(
        self,
        *,
        model: str = "",
        callback_url: str | None = None,
        output_path: Any = None,
        kie_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 3.0,
        timeout: timedelta = timedelta(minutes=30),
        retry_ambiguous_create: bool = False,
        end_from_trigger: bool = True,
        validate: models.Validate = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.callback_url = callback_url
        self.output_path = output_path
        self.kie_conn_id = kie_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.retry_ambiguous_create = retry_ambiguous_create
        self.end_from_trigger = end_from_trigger
        self.validate = validate
        check_wait_arguments(poll_interval, timeout)

    @cached_property
    def hook(self) -> KieHook:
        # Imported when a task runs: a DAG file's parse needs no HTTP client code.
        from airflow_provider_kie.hooks.kie import KieHook

        return KieHook(self.kie_conn_id, retry_ambiguous_create=self.retry_ambiguous_create)

    def docs_url(self) -> str | None:
        """The connection's ``docs_url``, read only when a page is (the catalog refused an input); a
        connection that cannot be read yet leaves ``KIE_DOCS_URL`` or Kie's docs (the create will say
        what is wrong with it)."""
        try:
            return self.hook.settings.docs_url
        except (KieError, AirflowNotFoundException):
            return None

    @property
    def poll_policy(self) -> PollPolicy:
        return PollPolicy(initial_interval=self.poll_interval)

    def with_uploads(self, body: dict[str, Any], files: list[inputs.LocalFile]) -> dict[str, Any]:
        """``body`` with its file inputs uploaded to Kie (once per content) and replaced by their URLs."""
        if not files:
            return body
        uploaded = inputs.upload_files(
            body["input"], files, self._upload, upload_host=self.hook.settings.upload_base_url
        )
        return {**body, "input": uploaded}

    def _upload(self, content: bytes, file_name: str) -> str:
        return self.hook.upload_file(content, upload_path=inputs.UPLOAD_PATH, file_name=file_name)


def check_wait_arguments(poll_interval: Any, timeout: Any, interval_name: str = "poll_interval") -> None:
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
        raise KieInputError(interval_name, f"must be a positive number of seconds, got {poll_interval!r}")
    if not isinstance(timeout, timedelta) or timeout.total_seconds() <= 0:
        raise KieInputError("timeout", f"must be a positive datetime.timedelta, got {timeout!r}")
