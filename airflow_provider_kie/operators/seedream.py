"""Seedream 4.5 operators: typed, validated inputs on top of KieCreateTaskOperator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_kie import api
from airflow_provider_kie.operators.kie import KieCreateTaskOperator


class SeedreamTextToImageOperator(KieCreateTaskOperator):
    """Generate an image with ``seedream/4.5-text-to-image``; returns the result URLs.

    :param prompt: 1-3000 characters (templated).
    :param aspect_ratio: one of 1:1, 4:3, 3:4, 16:9, 9:16, 2:3, 3:2, 21:9 (templated).
    :param quality: ``basic`` (2K) or ``high`` (4K) (templated).
    :param nsfw_checker: Kie's optional extra content filter; omitted when None.

    Every other parameter is KieCreateTaskOperator's. Input is validated after rendering, before any request.
    """

    model_name = api.SEEDREAM_TEXT_TO_IMAGE_MODEL
    image_urls: Any = None  # the edit model's input images
    template_fields: Sequence[str] = ("prompt", "aspect_ratio", "quality", "callback_url")

    def __init__(
        self,
        *,
        prompt: str,
        aspect_ratio: str = "1:1",
        quality: str = "basic",
        nsfw_checker: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model=self.model_name, **kwargs)
        self.prompt = prompt
        self.aspect_ratio = aspect_ratio
        self.quality = quality
        self.nsfw_checker = nsfw_checker

    def build_input(self) -> dict[str, Any]:
        return api.seedream_input(
            prompt=self.prompt,
            image_urls=self.image_urls,
            aspect_ratio=self.aspect_ratio,
            quality=self.quality,
            nsfw_checker=self.nsfw_checker,
            edit=self.model_name == api.SEEDREAM_EDIT_MODEL,
        )


class SeedreamEditOperator(SeedreamTextToImageOperator):
    """Edit images with ``seedream/4.5-edit``; returns the result URLs.

    :param image_urls: 1-14 http(s) URLs of JPEG/PNG/WEBP images (≤ 10 MB each): a list, one URL, or
        an XComArg from an upstream task (templated).

    Plus everything of SeedreamTextToImageOperator and KieCreateTaskOperator.
    """

    model_name = api.SEEDREAM_EDIT_MODEL
    template_fields: Sequence[str] = ("prompt", "image_urls", "aspect_ratio", "quality", "callback_url")

    def __init__(self, *, prompt: str, image_urls: Any, **kwargs: Any) -> None:
        super().__init__(prompt=prompt, **kwargs)
        self.image_urls = image_urls
