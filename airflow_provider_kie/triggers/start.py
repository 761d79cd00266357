"""KieStartTrigger: a Kie operator's task started in the triggerer (Airflow >= 3.3)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_kie import inputs, models, storage
from airflow_provider_kie.events import JobOutcome, JobsEvent
from airflow_provider_kie.exceptions import KieError
from airflow_provider_kie.triggers.jobs import KieJobsTrigger


class KieStartTrigger(KieJobsTrigger):
    """The start of a Kie operator's task in the triggerer (Airflow ≥ 3.3, ``start_from_trigger``): no
    worker renders, validates or defers it.

    Its keyword arguments are :class:`~airflow_provider_kie.triggers.jobs.KieJobsTrigger`'s settings and
    the operator's fields as written in the DAG (named by ``field_names``), which Airflow renders in the
    triggerer before :meth:`run`; ``spec`` (an :class:`~airflow_provider_kie.inputs.InputSpec` dict) says
    how they make the jobs' inputs. They are validated as on a worker, then the jobs run as in
    ``KieJobsTrigger``. Bad input ends the task with its error (0 requests); what only a worker can do
    (read local files, resume a retry's Kie tasks) hands the task to a worker, saying why.
    """

    def __init__(
        self,
        *,
        spec: Mapping[str, Any],
        field_names: Sequence[str],
        callback_url: str | None = None,
        validate: models.Validate = True,
        **kwargs: Any,
    ) -> None:
        fields = {name: kwargs.pop(name, None) for name in field_names}
        super().__init__(jobs=[], **kwargs)
        self.spec = inputs.InputSpec.from_dict(spec)
        self.field_names = list(field_names)
        self.callback_url = callback_url
        self.validate = validate
        for name, value in fields.items():  # as attributes: Airflow renders the templated ones in place
            setattr(self, name, value)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        path, settings = super().serialize()
        for name in ("jobs", "record", "legacy", "kept_awaited"):
            settings.pop(name)
        return path, {
            "spec": self.spec.to_dict(),
            "field_names": self.field_names,
            "callback_url": self.callback_url,
            "validate": self.validate,
            **settings,
            **{name: getattr(self, name) for name in self.field_names},
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        values = {name: getattr(self, name) for name in self.field_names}
        try_number = getattr(self.task_instance, "try_number", None)
        reason = inputs.worker_reason(self.spec, values, self.model, try_number=try_number)
        prepared: list[inputs.Prepared] = []
        if reason is None:
            try:
                prepared = await asyncio.to_thread(self._prepared, values, asyncio.get_running_loop())
            except KieError as error:
                yield TriggerEvent(JobsEvent([JobOutcome.errored(0, None, error, self.model)]).to_dict())
                return
            if any(p.files for p in prepared):
                reason = "its input names files, which a worker reads and uploads"
        if reason is not None:
            self.log.info("This task continues on a worker: %s", reason)
            yield TriggerEvent(JobsEvent(needs_worker=reason).to_dict())
            return
        self.jobs = json.dumps([p.job.to_dict() for p in prepared])
        async for event in super().run():
            yield event

    def _prepared(self, values: dict[str, Any], loop: asyncio.AbstractEventLoop) -> list[inputs.Prepared]:
        """The jobs as a worker would make them (in a thread: an input the catalog refuses has Kie's
        current page read, and the output folder is checked)."""

        def docs_url() -> str | None:  # read only when a page is, from this thread
            from airflow_provider_kie.hooks.settings import shared_settings

            return asyncio.run_coroutine_threadsafe(shared_settings(self.kie_conn_id), loop).result().docs_url

        if self.output_path is not None:
            self.output_path = str(storage.writable_folder(self.output_path))
        return inputs.prepare(
            self.model,
            inputs.expand(self.spec, values),
            callback_url=self.callback_url,
            validate=self.validate,
            docs_url=docs_url,
            parameter=self.spec.items or "input",
            single=self.single,
        )
