"""The gallery's cards from what task instances left, and its page (escaped; stored copies served by
the plugin, Kie's URLs shown as they are). The page in a real browser: tests/system/test_ui.py."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from airflow_provider_kie.plugins.gallery import Card, _cards, _Left, render


def record(state: str, **more) -> dict:
    return {"kie_task_id": f"kie-{state}", "model": "seedream/4.5-edit", "state": state, **more}


def test_a_task_card_holds_its_record_results_and_rendered_prompt():
    left = _Left(
        xcom={"kie_task": record("success", credits_consumed=6.0), "return_value": ["file:///out/a.png"]},
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


def test_a_batch_task_gives_a_card_per_edit_with_its_prompt():
    outcomes = [
        {
            "index": 0,
            "status": "success",
            "kie_task_id": "k0",
            "result": ["s3://b/0.png"],
            "credits_consumed": 6.0,
        },
        {"index": 1, "status": "failed", "kie_task_id": "k1", "result": [], "error": "failCode '500': boom"},
        {
            "index": 2,
            "status": "error",
            "kie_task_id": None,
            "result": [],
            "error": "rejected",
        },  # never created
    ]
    left = _Left(xcom={"return_value": outcomes}, rendered={"edits": '[{"prompt": "p0"}, {"prompt": "p1"}]'})
    cards = _cards("edits", -1, left)
    assert [(c.label, c.record["state"], c.prompt) for c in cards] == [
        ("edits #0", "success", "p0"),
        ("edits #1", "fail", "p1"),
    ]


def test_the_page_escapes_what_it_shows_and_links_stored_copies_through_the_plugin():
    cards = [
        Card(
            "stored", -1, -1, "success", record("success"), ["file:///out/a.png"], "<script>alert(1)</script>"
        ),
        Card("kie", -1, -1, "success", record("success"), ["https://tempfile.aiquickdraw.com/r.png"]),
        Card("fails", -1, -1, "failed", record("fail", fail_code="500", fail_msg="The <model> failed")),
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
