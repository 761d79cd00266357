"""Each example DAG through `airflow dags test` against the emulator, asserting the XCom it produced."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.support import AIRFLOW, AIRFLOW_3, EXAMPLES


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "KIE_POLL_INTERVAL": "0.1",
        "KIE_OUTPUT_DIR": str(home / "output"),
    }
    result = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return env


def dags_test(env, kie_emulator, dag_id):
    env = {**env, "AIRFLOW_CONN_KIE_DEFAULT": kie_emulator.connection_uri()}
    result = subprocess.run(
        [AIRFLOW, "dags", "test", dag_id], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    (run_id,) = db.execute(
        "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC", (dag_id,)
    ).fetchone()
    (state,) = db.execute("SELECT state FROM dag_run WHERE run_id = ?", (run_id,)).fetchone()
    rows = db.execute(
        "SELECT task_id, map_index, key, value FROM xcom WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)
    ).fetchall()
    xcom = {(task, index, key): json.loads(value) for task, index, key, value in rows}
    return state, xcom, result.stdout + result.stderr


def test_kie_seedream_edit(airflow_env, kie_emulator):
    state, xcom, output = dags_test(airflow_env, kie_emulator, "kie_seedream_edit")
    assert state == "success"
    (task_id,) = kie_emulator.state.tasks
    urls = xcom[("edit_image", -1, "return_value")]
    assert urls == [f"{kie_emulator.url}/files/results/{task_id}.png"]
    assert xcom[("edit_image", -1, "kie_task_id")] == task_id
    record = xcom[("edit_image", -1, "kie_task")]
    assert record["state"] == "success" and record["result_urls"] == urls and record["credits_consumed"] == 6
    saved = Path(xcom[("save_result", -1, "return_value")])
    assert saved.read_bytes().startswith(b"\x89PNG")
    (sent,) = [r.body for r in kie_emulator.requests if r.endpoint == "createTask"]
    assert sent["input"]["aspect_ratio"] == "1:1" and sent["input"]["quality"] == "basic"
    assert sent["input"]["image_urls"] == [
        "https://static.aiquickdraw.com/tools/example/1764851484363_ScV1s2aq.webp"
    ]
    assert "emulator-key" not in output


def test_kie_seedream_batch(airflow_env, kie_emulator):
    state, xcom, _ = dags_test(airflow_env, kie_emulator, "kie_seedream_batch")
    assert state == "success"
    assert kie_emulator.count("createTask") == 3 and len(kie_emulator.state.tasks) == 3
    prompts = [t.body["input"]["prompt"] for t in kie_emulator.state.tasks.values()]
    by_prompt = {t.body["input"]["prompt"]: t.task_id for t in kie_emulator.state.tasks.values()}
    collected = xcom[("collect", -1, "return_value")]
    from example_dags.kie_seedream_batch import PROMPTS

    assert sorted(prompts) == sorted(PROMPTS)
    assert collected == [f"{kie_emulator.url}/files/results/{by_prompt[p]}.png" for p in PROMPTS]
    for index in range(3):
        assert xcom[("edit", index, "return_value")] == [collected[index]]


def test_kie_task_sensor(airflow_env, kie_emulator):
    state, xcom, _ = dags_test(airflow_env, kie_emulator, "kie_task_sensor")
    assert state == "success"
    (task_id,) = kie_emulator.state.tasks
    assert xcom[("create", -1, "return_value")] == task_id
    assert xcom[("wait", -1, "return_value")] == [f"{kie_emulator.url}/files/results/{task_id}.png"]
    assert xcom[("wait", -1, "kie_task")]["state"] == "success"
    assert kie_emulator.count("createTask") == 1


def test_kie_seedream_batch_from_a_local_image(airflow_env, kie_emulator, tmp_path):
    cache = tmp_path / "upload-cache"  # this run's own: an earlier run may have used the same port
    env = {**airflow_env, "KIE_INPUT_IMAGE": str(EXAMPLES / "sample.png"), "KIE_UPLOAD_CACHE_DIR": str(cache)}
    state, _, _ = dags_test(env, kie_emulator, "kie_seedream_batch")
    assert state == "success"
    assert kie_emulator.count("upload") == 1 and kie_emulator.count("createTask") == 3
    (uploaded,) = {t.body["input"]["image_urls"][0] for t in kie_emulator.state.tasks.values()}
    assert uploaded.startswith(f"{kie_emulator.url}/files/uploads/airflow-inputs/")


def test_kie_content_pipeline_then_its_contact_sheet(airflow_env, kie_emulator, tmp_path):
    output = tmp_path / "content"
    env = {
        **airflow_env,
        "KIE_OUTPUT_URI": f"file://{output}",
        "KIE_UPLOAD_CACHE_DIR": str(tmp_path / "cache"),
    }
    state, xcom, _ = dags_test(env, kie_emulator, "kie_content_pipeline")
    assert state == "success"
    inputs = sorted((EXAMPLES / "inputs").iterdir())
    edits = 3 * len(inputs)
    # Every edit, then a clip of each edited still: each still is a distinct file, uploaded once.
    assert (
        kie_emulator.count("createTask") == 2 * edits and kie_emulator.count("upload") == len(inputs) + edits
    )
    results = xcom[("edit", -1, "return_value")]  # one batch task: an outcome per edit
    assert [r["status"] for r in results] == ["success"] * edits
    stored = [uri for r in results for uri in r["result"]]
    clips = xcom[("animate", -1, "return_value")]
    assert [c["status"] for c in clips] == ["success"] * edits
    videos = [uri for c in clips for uri in c["result"]]
    assert all(uri.endswith(".mp4") for uri in videos) and len(videos) == edits
    assert sorted(p.name for p in output.iterdir()) == sorted(
        [uri.rsplit("/", 1)[1] for uri in stored + videos]
        + [f"{kie_task_id}.json" for kie_task_id in kie_emulator.state.tasks]
    )
    manifests = [json.loads(p.read_text()) for p in output.glob("*.json")]
    edited = [m for m in manifests if m["model"] == "seedream/4.5-edit"]
    assert sorted(m["sources"][0] for m in edited) == sorted(str(p) for p in inputs for _ in range(3))
    animated = [m for m in manifests if m["model"] == "kling-2.6/image-to-video"]
    assert sorted(m["sources"][0] for m in animated) == sorted(stored)  # each clip names its still
    assert {f["content_type"] for m in animated for f in m["files"]} == {"video/mp4"}
    if AIRFLOW_3:  # Airflow 2's `dags test` records no dataset events for any operator (test mode)
        db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
        extras = [json.loads(extra) for (extra,) in db.execute("SELECT extra FROM asset_event ORDER BY id")]
        edit_extra, clip_extra = extras  # one event per batch, naming every Kie task and stored file
        assert sorted(edit_extra["kie_task_ids"] + clip_extra["kie_task_ids"]) == sorted(
            kie_emulator.state.tasks
        )
        assert edit_extra["stored"] == stored and edit_extra["failed_jobs"] == []
        assert clip_extra["stored"] == videos and clip_extra["kind"] == "video"

    state, xcom, _ = dags_test(env, kie_emulator, "kie_contact_sheet")
    assert state == "success"
    (sheet,) = xcom[("contact_sheet", -1, "return_value")]
    page = Path(sheet.removeprefix("file://"))
    assert page == output / "contact-sheet.html"
    assert page.read_text().count("<figure>") == 2 * edits and page.read_text().count("<video") == edits
