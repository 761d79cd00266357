"""The content pipeline to copy: images from a folder, every style applied to each by Seedream 4.5, each
edited still animated into a short video by Kling 2.6, the results stored with a manifest each, and a
contact sheet of stills and videos made when they land.

- ``kie_content_pipeline`` lists the images in ``KIE_INPUT_DIR`` (default: ``inputs/`` beside this file)
  and runs one edit per image and style as a single deferrable batch task: one worker run validates every
  edit, uploads each local image to Kie once and defers; the triggerer creates every Kie task under the
  key's rate limit, waits for them and copies each result to the run's ``output_uri`` param (default
  ``KIE_OUTPUT_URI``, else the folder ``$KIE_OUTPUT_DIR/content``; ``s3://aws_conn@bucket/prefix`` works
  the same with the ``[s3]`` extra), and a second short worker run records the outlet's asset event,
  whose extra holds the stored URIs, the Kie task ids and the credits. ``return_value`` holds each
  edit's outcome. (Mapped edits would cost two worker runs each: Airflow 3.3 starts no mapped task in
  the triggerer.)
- ``animate`` then turns each edited still into a 5 s clip with ``kling-2.6/image-to-video`` (a
  ``KieBatchOperator`` whose items are the stored stills: local or object-storage files, uploaded once
  each), stored as MP4 with a manifest each in the same folder; its outlet is the ``animated`` asset.
  With a key, each clip costs Kling's price on top of the edit's.
- ``kie_contact_sheet`` is scheduled on the ``animated`` asset: in each folder the triggering events
  name, it writes ``contact-sheet.html``, one entry per stored file there (images and playable videos),
  so it is complete whichever event triggered it.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Asset, ObjectStoragePath, Param, task

from airflow_provider_kie.operators.batch import KieBatchOperator, SeedreamEditBatchOperator

INPUT_DIR = Path(os.environ.get("KIE_INPUT_DIR") or Path(__file__).parent / "inputs")
OUTPUT_URI = os.environ.get("KIE_OUTPUT_URI") or (
    f"file://{Path(os.environ.get('KIE_OUTPUT_DIR') or Path(tempfile.gettempdir()) / 'kie-output') / 'content'}"
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
STYLES = [
    "Repaint it as a watercolour on rough paper.",
    "Make it a neon-lit night scene.",
    "Render it as a pencil sketch.",
]
CLIP = {"prompt": "A slow dolly-in; the scene comes alive.", "sound": False, "duration": "5"}
EDITED = Asset("kie://content-pipeline/edited")
ANIMATED = Asset("kie://content-pipeline/animated")
POLL_INTERVAL = float(os.environ.get("KIE_POLL_INTERVAL", "3"))

with DAG(
    dag_id="kie_content_pipeline",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["kie", "example"],
    params={"output_uri": Param(OUTPUT_URI, type="string", description="folder URI for the results")},
) as pipeline:

    @task
    def plan_edits() -> list[dict]:
        """One edit per image in the input folder and style."""
        images = sorted(p for p in INPUT_DIR.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ValueError(f"no {', '.join(sorted(IMAGE_SUFFIXES))} images in {INPUT_DIR}")
        return [{"image_urls": [str(image)], "prompt": style} for image in images for style in STYLES]

    edit = SeedreamEditBatchOperator(
        task_id="edit",
        edits=plan_edits(),
        aspect_ratio="1:1",
        quality="basic",
        deferrable=True,
        output_path="{{ params.output_uri }}",
        outlets=[EDITED],
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(minutes=15),
    )

    @task
    def plan_clips(outcomes: list[dict]) -> list[dict]:
        """One clip per edited still (its stored copy)."""
        return [{**CLIP, "image_urls": o["result"][:1]} for o in outcomes if o["status"] == "success"]

    KieBatchOperator(
        task_id="animate",
        model="kling-2.6/image-to-video",
        inputs=plan_clips(edit.output),
        deferrable=True,
        output_path="{{ params.output_uri }}",
        outlets=[ANIMATED],
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(minutes=30),
    )


with DAG(
    dag_id="kie_contact_sheet",
    start_date=datetime(2026, 1, 1),
    schedule=[ANIMATED],
    catchup=False,
    tags=["kie", "example"],
) as contact_sheet_dag:

    @task
    def contact_sheet(**context) -> list[str]:
        """An HTML page per results folder, of every stored result there with its prompt, source and
        Kie task. The folders come from the triggering asset events (``dags test`` has none: the default)."""
        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events") or {}
        stored = [
            uri
            for found in events.values()
            for event in found
            for uri in (event.extra or {}).get("stored", [])
        ]
        pages = []
        for folder_uri in sorted({uri.rsplit("/", 1)[0] for uri in stored} or {OUTPUT_URI}):
            pages.append(str(write_contact_sheet(ObjectStoragePath(folder_uri))))
        return pages

    contact_sheet()


def write_contact_sheet(folder: ObjectStoragePath) -> ObjectStoragePath:
    entries = []
    for path in sorted(folder.glob("*.json"), key=lambda p: p.name):
        manifest = json.loads(path.read_text())
        source = manifest.get("sources") or ["?"]  # the file as given, not its upload's URL
        for stored in manifest.get("stored") or []:
            name = html.escape(stored.rsplit("/", 1)[-1])
            shown = (
                f'<video src="{name}" width="256" controls muted loop></video>'
                if name.endswith((".mp4", ".webm", ".mov"))
                else f'<img src="{name}" width="256">'
            )
            entries.append(
                f"<figure>{shown}"
                f"<figcaption>{html.escape(str((manifest.get('input') or {}).get('prompt', '')))}<br>"
                f"from {html.escape(str(source[0]))}<br>Kie task {html.escape(manifest['kie_task_id'])}, "
                f"{manifest.get('credits_consumed')} credits</figcaption></figure>"
            )
    page = folder / "contact-sheet.html"
    page.write_text(
        "<!doctype html><meta charset=utf-8><title>Kie contact sheet</title>"
        "<style>figure{display:inline-block;width:272px;vertical-align:top}</style>"
        f"<h1>{len(entries)} results</h1>" + "".join(entries)
    )
    print(f"Contact sheet of {len(entries)} results: {page}")
    return page
