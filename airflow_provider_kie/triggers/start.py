"""KieStartTrigger: a Kie operator's task started in the triggerer (Airflow >= 3.3)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_kie import models, storage
from airflow_provider_kie.events import CreateRequest, EventStatus, KieTaskEvent, StoreRequest
from airflow_provider_kie.exceptions import KieError, KieInputError
from airflow_provider_kie.triggers.kie import KieTaskTrigger


class KieStartTrigger(BaseTrigger):
    """The start of a Kie operator's task in the triggerer (Airflow ≥ 3.3, ``start_from_trigger``): no
    worker renders, validates or defers it.

    Its keyword arguments are the operator's own fields as written in the DAG (``model``, ``input`` or
    the typed fields named by ``typed_fields``, ``callback_url``, ``output_path``) and its settings.
    Airflow renders the templated ones in the triggerer before :meth:`run`; the input is then validated
    as on a worker, and a :class:`KieTaskTrigger` creates, waits, copies and ends the task. Bad input is
    an error event (the task fails with the same error, 0 requests); what only a worker can do (read
    local files, resume a retry's Kie task from the task state store) resumes the task on a worker with
    a ``needs_worker`` event that says why.
    """

    def __init__(
        self,
        *,
        model: str,
        input: Any = None,
        typed_fields: list[str] | None = None,
        callback_url: str | None = None,
        output_path: str | None = None,
        kie_conn_id: str = "kie_default",
        timeout: float = 1800.0,
        retry_ambiguous_create: bool = False,
        poll_policy: Mapping[str, Any] | None = None,
        end_from_trigger: bool = True,
        validate: models.Validate = True,
        **fields: Any,
    ) -> None:
        super().__init__()
        self.model = model
        self.input = input
        self.typed_fields = list(typed_fields) if typed_fields is not None else None
        self.callback_url = callback_url
        self.output_path = output_path
        self.kie_conn_id = kie_conn_id
        self.timeout = float(timeout)
        self.retry_ambiguous_create = retry_ambiguous_create
        self.poll_policy = dict(poll_policy) if poll_policy else None
        self.end_from_trigger = end_from_trigger
        self.validate = validate
        self.fields = dict(fields)
        for name, value in fields.items():  # as attributes: Airflow renders the templated ones in place
            setattr(self, name, value)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "model": self.model,
            "input": self.input,
            "typed_fields": self.typed_fields,
            "callback_url": self.callback_url,
            "output_path": self.output_path,
            "kie_conn_id": self.kie_conn_id,
            "timeout": self.timeout,
            "retry_ambiguous_create": self.retry_ambiguous_create,
            "poll_policy": self.poll_policy,
            "end_from_trigger": self.end_from_trigger,
            "validate": self.validate,
            **{name: getattr(self, name) for name in self.fields},
        }

    def __repr__(self) -> str:
        return f"<KieStartTrigger model={self.model!r} kie_conn_id={self.kie_conn_id!r}>"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            inner = await self._waiting_trigger()
        except KieError as error:
            yield TriggerEvent(KieTaskEvent.errored(None, error).to_dict())
            return
        if isinstance(inner, str):
            self.log.info("This task continues on a worker: %s", inner)
            yield TriggerEvent(KieTaskEvent(EventStatus.NEEDS_WORKER, message=inner).to_dict())
            return
        inner.task_instance = self.task_instance
        async for event in inner.run():
            yield event

    async def _waiting_trigger(self) -> KieTaskTrigger | str:
        """The KieTaskTrigger that creates and waits for the task, or why a worker must run it."""
        ti = self.task_instance
        if ti is not None and (getattr(ti, "try_number", 1) or 1) > 1:
            return "a retry resumes the Kie task of an earlier try, which only a worker can look up"
        model_input = (
            {name: getattr(self, name) for name in self.typed_fields}
            if self.typed_fields is not None
            else self.input
        )
        if not isinstance(model_input, Mapping):
            raise KieInputError("input", f"must be a dict of the model's input fields, got {model_input!r}")
        loop = asyncio.get_running_loop()

        def docs_url() -> str | None:  # asked only when a page is read, from the validating thread
            from airflow_provider_kie.hooks.settings import shared_settings

            return asyncio.run_coroutine_threadsafe(shared_settings(self.kie_conn_id), loop).result().docs_url

        # In a thread: an input the catalog refuses has Kie's current page read.
        body = await asyncio.to_thread(
            models.create_task_body,
            self.model,
            model_input,
            self.callback_url,
            files=True,
            validate=self.validate,
            docs_url=docs_url,
        )
        given = models.file_inputs(self.model, body["input"])
        if any(models.is_file_ref(item) for item in given):
            return "its input names files, which a worker reads and uploads"
        store = None
        if self.output_path is not None:
            folder = await asyncio.to_thread(storage.writable_folder, self.output_path)
            provenance = {"input": body["input"], "sources": [str(item) for item in given]}
            store = StoreRequest(str(folder), provenance).to_dict()
        return KieTaskTrigger(
            kie_conn_id=self.kie_conn_id,
            create=CreateRequest(body, self.timeout, self.retry_ambiguous_create).to_dict(),
            poll_policy=self.poll_policy,
            end_from_trigger=self.end_from_trigger,
            store=store,
        )
