"""The gallery's cards from what task instances left, and its page (escaped; stored copies served by
the plugin, Kie's URLs shown as they are). The page in a real browser: tests/system/test_ui.py."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from airflow_provider_kie.events import JobOutcome, Status
from airflow_provider_kie.plugins.gallery import Card, _cards, _Left, render


def outcome(status: str, **more) -> dict:
    return {
        "index": 0,
        "status": status,
        "kie_task_id": f"kie-{status}",
        "model": "seedream/4.5-edit",
        **more,
    }


def test_a_task_card_holds_its_outcome_results_and_rendered_prompt():
    left = _Left(
        xcom={
            "kie_task": outcome(
                "success", state="success", result=["file:///out/a.png"], credits_consumed=6.0
            ),
            "return_value": ["file:///out/a.png"],
        },
        rendered={"prompt": "A red dress"},
        state="success",
        seconds=12.5,
    )
    (card,) = _cards("edit", 2, left)
    assert (card.label, card.prompt, card.returned, card.seconds) == (
        "edit [2]",
        "A red dress",
        ["file:///out/a.png"],
        12.5,
    )


def test_a_task_of_many_jobs_gives_a_card_per_job_that_made_a_kie_task():
    outcomes = [
        outcome("success", result=["s3://b/0.png"], credits_consumed=6.0, prompt="p0"),
        {**outcome("failed", fail_code="500", fail_msg="boom", prompt="p1"), "index": 1},
        {**outcome("error", error="rejected"), "index": 2, "kie_task_id": None},  # never created
    ]
    cards = _cards("edits", -1, _Left(xcom={"return_value": outcomes}))
    assert [(c.label, c.outcome.status, c.prompt, c.returned) for c in cards] == [
        ("edits #0", Status.SUCCESS, "p0", ["s3://b/0.png"]),
        ("edits #1", Status.FAILED, "p1", []),
    ]


def card(
    task_id: str, status: Status, result: tuple[str, ...] = (), prompt: str | None = None, **more
) -> Card:
    made = JobOutcome(0, status, f"kie-{task_id}", model="m", result=result, **more)
    return Card(task_id, -1, -1, "success", made, prompt)


def test_the_page_escapes_what_it_shows_and_links_stored_copies_through_the_plugin():
    cards = [
        card("stored", Status.SUCCESS, ("file:///out/a.png",), "<script>alert(1)</script>"),
        card("kie", Status.SUCCESS, ("https://tempfile.aiquickdraw.com/r.png",)),
        card("fails", Status.FAILED, fail_code="500", fail_msg="The <model> failed"),
    ]
    page = render("dag", "manual__1", cards)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert (
        'src="gallery/image?dag_id=dag&amp;run_id=manual__1&amp;task_id=stored&amp;map_index=-1&amp;item=-1&amp;index=0"'
        in page
    )
    assert 'src="https://tempfile.aiquickdraw.com/r.png"' in page
    assert "failCode 500: The &lt;model&gt; failed" in page
    assert render("dag", "r", []).count("No Kie task of this run has finished yet") == 1


def test_results_show_as_players_images_or_links_by_their_type():
    from airflow_provider_kie.plugins.gallery import _media_html

    assert _media_html("s", "file:///o/a.mp4", "r").startswith("<video")
    assert _media_html("s", "file:///o/a.mp3", "r").startswith("<audio")
    assert "<img" in _media_html("s", "https://k/a.png?x=1", "r")
    assert (
        _media_html("s", "file:///o/a-object.json", "r")
        == '<a href="s" target="_blank">r (application/json)</a>'
    )
