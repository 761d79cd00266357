"""KieCreateTaskOperator: one Kie job of any Market model, created then waited for (deferred or not)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from airflow_provider_kie import models
from airflow_provider_kie.exceptions import KieInputError
from airflow_provider_kie.operators.base import KieOperatorBase


class KieCreateTaskOperator(KieOperatorBase):
    """Create one Kie task and, unless told otherwise, wait for it and return its result URLs.

    :param model: Kie Market model, e.g. ``"seedream/4.5-edit"``.
    :param input: the model's ``input`` object (templated). Catalog models are validated before any request.
    :param callback_url: absolute http(s) URL Kie POSTs to when the task ends (templated).
    :param kie_conn_id: connection of type ``kie``.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param wait_for_completion: if False, return the Kie task id right after creation.
    :param poll_interval: first poll interval in seconds; the policy backs off with the task's age.
    :param timeout: how long to wait for the task, as an absolute deadline set when it is created; it
        holds across deferral, triggerer restarts and retries that resume the same Kie task.
    :param validate: check ``input`` before any request: True (default) by the model's catalog entry,
        and what the entry refuses by Kie's current page, which decides (docs/models.md); ``"strict"``
        by the catalog entry alone; False sends it as given. A model outside the catalog is sent
        unvalidated, with a warning.
    :param retry_ambiguous_create: resend a createTask whose reply was lost (may pay twice).
    :param end_from_trigger: when deferred, a success ends the task in the triggerer with its XCom,
        without resuming on a worker; set False if a subclass must run ``execute_complete`` on success.
    :param output_path: a folder (URI such as ``file:///data/kie`` or ``s3://bucket/kie``, or an
        ``ObjectStoragePath``) to copy every result into before the task succeeds (templated); then
        ``return_value`` is the list of stored URIs. None: results stay at Kie's URLs.
    :param durable: keep what the task sent in Airflow's task state store (Airflow ≥ 3.3), so a retry
        waits for the Kie task an earlier try created instead of paying for another (default True).

    Deferrable on Airflow 3.3, an unmapped task with no files or upstream arguments starts in the
    triggerer; otherwise a worker validates the input, uploads its files and defers, and the triggerer's
    one rate limiter paces every task to Kie's createTask limit. Not deferrable, the worker creates and
    waits itself, under the same ledger: the create is marked in the task state store before it leaves,
    so a worker killed mid-create leaves a retry that reports it instead of paying again.

    XCom: ``return_value`` = list of result URLs (stored URIs with ``output_path``); ``kie_task_id``
    (pushed as soon as the task exists); ``kie_task`` = the job's outcome (state, result_urls, fail_code,
    fail_msg, credits_consumed, times, prompt, kind, and its status and error).
    """

    template_fields: Sequence[str] = ("model", "input", "callback_url", "output_path")
    template_fields_renderers = {"input": "json"}
    ui_color = "#f0e6ff"
    #: The catalog entry of a typed operator (:class:`~airflow_provider_kie.operators.seedream.KieModelOperator`).
    kie_model: ClassVar[models.KieModel | None] = None

    def __init__(
        self,
        *,
        input: Mapping[str, Any] | None = None,
        wait_for_completion: bool = True,
        **kwargs: Any,
    ) -> None:
        self.input = input  # before the base decides where the task starts, which reads it
        self.wait_for_completion = wait_for_completion
        super().__init__(**kwargs)

    @property
    def waits(self) -> bool:
        return self.wait_for_completion

    def build_input(self) -> dict[str, Any]:
        """The rendered ``input``; a subclass may build it from fields of its own (it then starts on a worker)."""
        (given,) = super().job_inputs()
        if not isinstance(given, Mapping):
            raise KieInputError("input", f"must be a dict of the model's input fields, got {given!r}")
        return dict(given)

    def job_inputs(self) -> list[Any]:
        return [self.build_input()]

    def builds_inputs_itself(self) -> bool:
        return type(self).build_input is not KieCreateTaskOperator.build_input
