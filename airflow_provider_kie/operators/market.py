"""Typed operators for the Kie Market models content teams use most: images, video, audio.

Each names its model; its parameters, their allowed values and its templated fields come from the
model's catalog entry (docs/models.md). Any other catalog model runs, validated the same way, through
``KieCreateTaskOperator(model=..., input={...})``.
"""

from __future__ import annotations

from airflow_provider_kie import models
from airflow_provider_kie.operators.seedream import KieModelOperator


class Seedream5LiteTextToImageOperator(KieModelOperator):
    """Generate an image with ``seedream/5-lite-text-to-image``; returns the result URLs."""

    kie_model = models.catalog_model("seedream/5-lite-text-to-image")


class Seedream5LiteEditOperator(KieModelOperator):
    """Edit images with ``seedream/5-lite-image-to-image``; returns the result URLs."""

    kie_model = models.catalog_model("seedream/5-lite-image-to-image")


class NanoBanana2Operator(KieModelOperator):
    """Generate or edit (with ``image_input``) an image with ``nano-banana-2``."""

    kie_model = models.catalog_model("nano-banana-2")


class NanoBananaProOperator(KieModelOperator):
    """Generate or edit (with ``image_input``) an image with ``nano-banana-pro``."""

    kie_model = models.catalog_model("nano-banana-pro")


class Kling26ImageToVideoOperator(KieModelOperator):
    """Animate an image into a video with ``kling-2.6/image-to-video``; returns the MP4 URLs."""

    kie_model = models.catalog_model("kling-2.6/image-to-video")


class Kling26TextToVideoOperator(KieModelOperator):
    """Make a video from a prompt with ``kling-2.6/text-to-video``; returns the MP4 URLs."""

    kie_model = models.catalog_model("kling-2.6/text-to-video")


class Kling30VideoOperator(KieModelOperator):
    """Make a video with ``kling-3.0/video``: from a prompt, or from a first (and last) frame in
    ``image_urls``; several shots with ``multi_shots`` and ``multi_prompt``."""

    kie_model = models.catalog_model("kling-3.0/video")


class SeedanceOperator(KieModelOperator):
    """Make a video with ``bytedance/seedance-2``: from a prompt, first/last frames, or reference
    images, videos and audio."""

    kie_model = models.catalog_model("bytedance/seedance-2")


class TopazImageUpscaleOperator(KieModelOperator):
    """Upscale an image with ``topaz/image-upscale``."""

    kie_model = models.catalog_model("topaz/image-upscale")


class ElevenLabsTextToSpeechOperator(KieModelOperator):
    """Speak a text with ``elevenlabs/text-to-speech-multilingual-v2``; returns the audio URLs."""

    kie_model = models.catalog_model("elevenlabs/text-to-speech-multilingual-v2")
