"""Batch operators: many Kie jobs in one Airflow task, created and waited for together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_provider_kie import inputs, models
from airflow_provider_kie.operators.base import KieOperatorBase


class KieBatchOperator(KieOperatorBase):
    """Run one Kie job per item of ``inputs`` in a single Airflow task, and return every job's outcome.

    :param model: Kie Market model, e.g. ``"seedream/4.5-edit"``.
    :param inputs: a list of the model's ``input`` objects, or an XComArg of one (templated). Every item
        is validated before any request: one bad item fails the task, naming it, with no request made.
    :param callback_url: absolute http(s) URL Kie POSTs to when each task ends (templated).
    :param output_path: a folder URI (``file://``, ``s3://conn@bucket/prefix``...) to copy every result
        into, with a manifest per Kie task (templated).
    :param on_item_failure: ``"fail"`` (default): once every job has ended, fail the task if any did not
        succeed (a retry resumes the jobs already created and pays again only for those Kie failed);
        ``"report"``: succeed, and report them in ``return_value``.
    :param deferrable: create and wait in the triggerer. On Airflow 3.3 a batch whose items need no
        worker (no files to upload, no upstream argument) starts there too: no worker run at all;
        otherwise one worker run validates the items, uploads their files and defers.
    :param timeout: how long each job may take from its creation.
    :param retry_ambiguous_create: resend a createTask whose reply was lost (may pay twice).
    :param end_from_trigger: end the task in the triggerer when every job has ended, unless it has
        outlets, an on_success_callback or listeners, which only a worker honours.

    Every other parameter is :class:`~airflow_provider_kie.operators.kie.KieCreateTaskOperator`'s.
    ``return_value``: one entry per job, in order: ``index``, ``status`` (success, failed, error,
    timeout), ``kie_task_id``, ``result`` (stored URIs, else Kie's result URLs), ``credits_consumed``,
    ``error`` and ``retryable``, and the Kie task's record (``state``, ``result_urls``, ``fail_code``, ...).
    Not deferrable (or on Airflow 2), the worker runs the jobs itself under the same ledger.
    """

    template_fields: Sequence[str] = ("model", "inputs", "callback_url", "output_path")
    template_fields_renderers = {"inputs": "json"}
    ui_color = "#e6d9ff"
    single = False
    input_spec: ClassVar[inputs.InputSpec] = inputs.InputSpec(items="inputs")

    def __init__(self, *, inputs: Any = None, **kwargs: Any) -> None:
        self.inputs = inputs  # before the base decides where the task starts, which reads it
        super().__init__(**kwargs)


class SeedreamEditBatchOperator(KieBatchOperator):
    """Edit images with ``seedream/4.5-edit``, one Kie job per item of ``edits``, in one Airflow task.

    :param edits: a list (or an XComArg of one) whose items are a prompt, or a dict of this model's
        fields (``prompt``, ``image_urls``, ``aspect_ratio``, ``quality``, ``nsfw_checker``) that
        override the operator's own (templated).
    :param prompt: the prompt of items that give none (templated).
    :param image_urls: the images of items that give none: URLs or files, uploaded once (templated).
    :param aspect_ratio: one of 1:1, 4:3, 3:4, 16:9, 9:16, 2:3, 3:2, 21:9 (templated).
    :param quality: ``basic`` (2K) or ``high`` (4K) (templated).
    :param nsfw_checker: Kie's optional extra content filter; omitted when None.

    Every other parameter is KieBatchOperator's.
    """

    template_fields: Sequence[str] = (
        "edits",
        "prompt",
        "image_urls",
        "aspect_ratio",
        "quality",
        "callback_url",
        "output_path",
    )
    template_fields_renderers = {"edits": "json"}
    input_spec = inputs.InputSpec(
        items="edits",
        fields=("prompt", "image_urls", "aspect_ratio", "quality", "nsfw_checker"),
        text="prompt",
    )

    def __init__(
        self,
        *,
        edits: Any,
        prompt: str | None = None,
        image_urls: Any = None,
        aspect_ratio: str = "1:1",
        quality: str = "basic",
        nsfw_checker: bool | None = None,
        **kwargs: Any,
    ) -> None:
        self.edits = edits
        self.prompt = prompt
        self.image_urls = image_urls
        self.aspect_ratio = aspect_ratio
        self.quality = quality
        self.nsfw_checker = nsfw_checker
        super().__init__(model=models.SEEDREAM_EDIT_MODEL, **kwargs)
