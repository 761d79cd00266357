"""The gallery: a DAG run's Kie tasks in the Airflow UI (a "Kie results" tab on the run's page).

Server-rendered from what the tasks left in Airflow's database (XCom ``kie_task`` and ``return_value``,
the rendered prompt), behind Airflow's own login and DAG permissions (the UI's token cookie reaches the
tab's frame). Stored results are streamed from their object storage through :func:`image`, which serves
only a URI a task of the run returned; Kie's own URLs are shown as they are while they live. Nothing
asks Kie, and no key reaches the browser.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, StreamingResponse

from airflow_provider_kie import media
from airflow_provider_kie.compat import dag_readers, metadata
from airflow_provider_kie.events import JobOutcome, Status
from airflow_provider_kie.results import RETURN_VALUE, XCOM_KIE_TASK


@dataclass
class Card:
    """One Kie job of the run, as the gallery shows it."""

    task_id: str
    map_index: int
    item: int = -1  # the job's index in a task of many, else -1
    state: str | None = None  # the Airflow task's
    outcome: JobOutcome | None = None
    prompt: str | None = None
    seconds: float | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        return self.task_id, self.map_index, self.item

    @property
    def label(self) -> str:
        label = self.task_id if self.map_index < 0 else f"{self.task_id} [{self.map_index}]"
        return label if self.item < 0 else f"{label} #{self.item}"

    @property
    def returned(self) -> list[str]:
        """What the job made: stored URIs, or Kie's URLs."""
        return list(self.outcome.result) if self.outcome and self.outcome.succeeded else []


@dataclass
class _Left:
    """What one task instance left: its XComs and rendered fields."""

    xcom: dict[str, Any] = field(default_factory=dict)
    rendered: dict[str, Any] = field(default_factory=dict)
    state: str | None = None
    seconds: float | None = None


def run_cards(dag_id: str, run_id: str, task: tuple[str, int] | None = None) -> list[Card]:
    """A card per Kie task the run's task instances (or only ``task``: its task id and map index) left
    a record of, in task, map index, item order."""
    from sqlalchemy import select

    db = metadata()
    XComModel, TaskInstance, RenderedTaskInstanceFields = (
        db.XComModel,
        db.TaskInstance,
        db.RenderedTaskInstanceFields,
    )

    def of_run(model: Any) -> list[Any]:
        where = [model.dag_id == dag_id, model.run_id == run_id]
        if task is not None:
            where += [model.task_id == task[0], model.map_index == task[1]]
        return where

    left: dict[tuple[str, int], _Left] = {}
    with db.session() as session:
        for row in session.scalars(
            select(XComModel).where(*of_run(XComModel), XComModel.key.in_([XCOM_KIE_TASK, RETURN_VALUE]))
        ):
            left.setdefault((row.task_id, row.map_index), _Left()).xcom[row.key] = (
                XComModel.deserialize_value(row)
            )
        for ti in session.scalars(select(TaskInstance).where(*of_run(TaskInstance))):
            if (found := left.get((ti.task_id, ti.map_index))) is not None:
                found.state, found.seconds = ti.state, ti.duration
        for fields in session.scalars(
            select(RenderedTaskInstanceFields).where(*of_run(RenderedTaskInstanceFields))
        ):
            if (found := left.get((fields.task_id, fields.map_index))) is not None:
                found.rendered = fields.rendered_fields if isinstance(fields.rendered_fields, dict) else {}
    cards = [
        card for (task_id, map_index), found in left.items() for card in _cards(task_id, map_index, found)
    ]
    return sorted(cards, key=lambda card: card.key)


def _cards(task_id: str, map_index: int, left: _Left) -> list[Card]:
    """A card per job the task instance left an outcome of: a single job's in XCom ``kie_task``, many
    jobs' in ``return_value``."""
    record, returned = left.xcom.get(XCOM_KIE_TASK), left.xcom.get(RETURN_VALUE)
    single = isinstance(record, dict)
    entries = [record] if single else returned if isinstance(returned, list) else []
    cards = []
    for entry in entries:
        try:
            outcome = JobOutcome.from_dict(entry or {})
        except (KeyError, TypeError, ValueError, AttributeError):  # not a job's outcome
            continue
        if outcome.kie_task_id:
            prompt = outcome.prompt or (_prompt(left.rendered) if single else None)
            item = -1 if single else outcome.index
            cards.append(Card(task_id, map_index, item, left.state, outcome, prompt, left.seconds))
    return cards


def _json(value: Any) -> Any:
    """A rendered field as its value (Airflow may keep one as its JSON text)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _prompt(rendered: dict[str, Any]) -> str | None:
    given = _json(rendered.get("input"))
    for candidate in (rendered.get("prompt"), given.get("prompt") if isinstance(given, dict) else None):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _shown(uri: str) -> bool:
    """Kie's URLs are shown as they are; anything else (a stored copy) goes through :func:`image`."""
    return uri.startswith(("https://", "http://"))


def render(dag_id: str, run_id: str, cards: list[Card]) -> str:
    body: Iterable[str] = (
        (part for card in cards for part in _card_html(dag_id, run_id, card))
        if cards
        else ['<p class="empty">No Kie task of this run has finished yet.</p>']
    )
    return "".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'><title>Kie results</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<header>Kie results of <b>{html.escape(dag_id)}</b> / {html.escape(run_id)}: {len(cards)} task(s)</header>",
            '<main class="gallery">',
            *body,
            "</main></body></html>",
        ]
    )


def _image_src(dag_id: str, run_id: str, card: Card, index: int, uri: str) -> str:
    if _shown(uri):
        return uri
    query = urlencode(
        {
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": card.task_id,
            "map_index": card.map_index,
            "item": card.item,
            "index": index,
        }
    )
    return f"gallery/image?{query}"


def _card_html(dag_id: str, run_id: str, card: Card) -> Iterator[str]:
    outcome, e = card.outcome, html.escape
    assert outcome is not None
    state = "fail" if outcome.status is Status.FAILED else outcome.state or outcome.status.value
    yield f'<article class="card {e(state)}" data-kie-task-id="{e(outcome.kie_task_id or "")}">'
    if card.returned:
        yield '<div class="images">'
        for index, uri in enumerate(card.returned):
            yield _media_html(
                e(_image_src(dag_id, run_id, card, index, uri)), uri, f"result {index + 1} of {card.label}"
            )
        yield "</div>"
    yield f"<h2>{e(card.label)}</h2>"
    if card.prompt:
        yield f'<p class="prompt">{e(card.prompt)}</p>'
    credits = outcome.credits_consumed
    facts = [
        ("model", outcome.model),
        ("Kie state", state),
        ("Airflow state", card.state),
        ("credits", None if credits is None else f"{credits:g}"),
        ("duration", None if card.seconds is None else f"{card.seconds:.0f} s"),
        ("Kie task", outcome.kie_task_id),
    ]
    yield (
        "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in facts if v is not None) + "</dl>"
    )
    if not outcome.succeeded and outcome.message:
        yield f'<p class="failure">{e(outcome.message)}</p>'
    yield "</article>"


def _media_html(src: str, uri: str, label: str) -> str:
    """A result as the browser shows it: a video or a sound with its controls, else an image."""
    media_type = media.of_name(uri) or "image/*"  # a URL that names no type: Kie's images do not
    kind = media.kind(media_type)
    if kind == "video":
        return f'<video src="{src}" controls muted playsinline preload="metadata" title="{html.escape(label)}"></video>'
    if kind == "audio":
        return f'<audio src="{src}" controls preload="metadata" title="{html.escape(label)}"></audio>'
    if kind != "image":  # data such as a transcript: a link to it
        return f'<a href="{src}" target="_blank">{html.escape(label)} ({html.escape(media_type)})</a>'
    return f'<a href="{src}" target="_blank"><img src="{src}" alt="{html.escape(label)}" loading="lazy"></a>'


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; padding: 16px; color: #1a202c; background: #fff; }
@media (prefers-color-scheme: dark) { body { color: #e2e8f0; background: #1a202c; } }
header { margin-bottom: 16px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 16px; }
.card { border: 1px solid #cbd5e0; border-radius: 8px; padding: 12px; }
.card.fail { border-color: #e53e3e; }
.images { display: flex; flex-wrap: wrap; gap: 6px; }
.images img, .images video { width: 100%; max-height: 260px; object-fit: contain; border-radius: 4px; background: #edf2f7; }
.images audio { width: 100%; }
h2 { font-size: 1rem; margin: 8px 0 4px; }
.prompt { font-style: italic; margin: 4px 0; }
dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 8px; font-size: 0.85rem; margin: 6px 0 0; }
dt { color: #718096; } dd { margin: 0; overflow-wrap: anywhere; }
.failure { color: #e53e3e; font-size: 0.9rem; }
"""


def router() -> APIRouter:
    routes = APIRouter()

    @routes.get("/gallery", response_class=HTMLResponse, dependencies=[dag_readers()])
    def gallery(dag_id: str = Query(...), run_id: str = Query(...)) -> HTMLResponse:
        return HTMLResponse(render(dag_id, run_id, run_cards(dag_id, run_id)))

    @routes.get("/gallery/image", dependencies=[dag_readers()])
    def image(
        dag_id: str = Query(...),
        run_id: str = Query(...),
        task_id: str = Query(...),
        map_index: int = Query(-1),
        item: int = Query(-1),
        index: int = Query(0),
    ) -> StreamingResponse:
        cards = run_cards(dag_id, run_id, task=(task_id, map_index))
        card = next((c for c in cards if c.key == (task_id, map_index, item)), None)
        if card is None or not 0 <= index < len(card.returned) or _shown(card.returned[index]):
            raise HTTPException(404, "no such stored result")
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        path = ObjectStoragePath(card.returned[index])

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as source:
                while chunk := source.read(1 << 20):
                    yield chunk

        media_type = media.of_name(card.returned[index]) or "application/octet-stream"
        return StreamingResponse(chunks(), media_type=media_type)

    return routes
