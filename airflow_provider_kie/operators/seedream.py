"""Typed operators: a catalog entry's fields as parameters, on top of KieCreateTaskOperator; and the
Seedream 4.5 pair."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from airflow_provider_kie import inputs, models
from airflow_provider_kie.operators.kie import KieCreateTaskOperator


class KieModelOperator(KieCreateTaskOperator):
    """A KieCreateTaskOperator whose ``input`` is made of one parameter per field of ``kie_model`` (a
    catalog entry). A subclass names the model; its templated fields and the documentation of its
    parameters come from the catalog entry, unless the subclass declares them itself."""

    kie_model: ClassVar[models.KieModel]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = cls.__dict__.get("kie_model")
        if model is None:
            return
        cls.input_spec = inputs.InputSpec(fields=model.template_fields)
        if "template_fields" not in cls.__dict__:
            cls.template_fields = (*model.template_fields, "callback_url", "output_path")
        if ":param" not in (cls.__doc__ or ""):
            cls.__doc__ = f"{cls.__doc__ or ''}\n\n{parameter_docs(model)}"

    def __init__(self, **kwargs: Any) -> None:
        for f in self.kie_model.fields:  # before the base decides where the task starts, which reads them
            setattr(self, f.name, kwargs.pop(f.name, None))
        super().__init__(model=self.kie_model.name, **kwargs)


class SeedreamTextToImageOperator(KieModelOperator):
    """Generate an image with ``seedream/4.5-text-to-image``; returns the result URLs.

    :param prompt: 1-3000 characters (templated).
    :param aspect_ratio: one of 1:1, 4:3, 3:4, 16:9, 9:16, 2:3, 3:2, 21:9 (templated).
    :param quality: ``basic`` (2K) or ``high`` (4K) (templated).
    :param nsfw_checker: Kie's optional extra content filter; omitted when None.

    Every other parameter is KieCreateTaskOperator's. Input is validated after rendering, before any request.
    """

    kie_model = models.catalog_model(models.SEEDREAM_TEXT_TO_IMAGE_MODEL)
    template_fields: Sequence[str] = (*kie_model.template_fields, "callback_url", "output_path")

    def __init__(
        self,
        *,
        prompt: str,
        aspect_ratio: str = "1:1",
        quality: str = "basic",
        nsfw_checker: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            prompt=prompt, aspect_ratio=aspect_ratio, quality=quality, nsfw_checker=nsfw_checker, **kwargs
        )


class SeedreamEditOperator(KieModelOperator):
    """Edit images with ``seedream/4.5-edit``; returns the result URLs.

    :param prompt: 1-3000 characters (templated).
    :param image_urls: 1-14 http(s) URLs of JPEG/PNG/WEBP images (≤ 10 MB each): a list, one URL, or
        an XComArg from an upstream task (templated).
    :param aspect_ratio: one of 1:1, 4:3, 3:4, 16:9, 9:16, 2:3, 3:2, 21:9 (templated).
    :param quality: ``basic`` (2K) or ``high`` (4K) (templated).
    :param nsfw_checker: Kie's optional extra content filter; omitted when None.

    Every other parameter is KieCreateTaskOperator's. Input is validated after rendering, before any request.
    """

    kie_model = models.catalog_model(models.SEEDREAM_EDIT_MODEL)
    template_fields: Sequence[str] = (*kie_model.template_fields, "callback_url", "output_path")

    def __init__(
        self,
        *,
        prompt: str,
        image_urls: Any,
        aspect_ratio: str = "1:1",
        quality: str = "basic",
        nsfw_checker: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            prompt=prompt,
            image_urls=image_urls,
            aspect_ratio=aspect_ratio,
            quality=quality,
            nsfw_checker=nsfw_checker,
            **kwargs,
        )


def parameter_docs(model: models.KieModel) -> str:
    """The ``:param:`` lines of a typed operator, from its catalog entry."""
    lines = []
    for f in model.fields:
        facts = [f.allowed() if not f.file else f"{f.file} file(s): URLs, local paths or object-storage URIs"]
        if f.is_list and f.max_items is not None:
            facts.append(f"at most {f.max_items} items")
        facts.append("required" if f.required and f.default is None else f"default {f.default!r}")
        lines.append(f"    :param {f.name}: {'; '.join(facts)} (templated).")
    source = "Kie's page " + model.doc_url if model.confidence == "doc" else "third-party material only"
    lines.append(
        f"\n    Fields from the provider's catalog ({source}); every other parameter is KieCreateTaskOperator's."
        " Input is validated after rendering, before any request."
    )
    return "\n".join(lines)
