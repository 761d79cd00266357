"""A real Airflow 3.3 (scheduler, triggerer, dag-processor, api-server) runs the example content pipeline
with its default settings: a batch of edits, then a batch of clips animating them, stored in the local
folder, then in S3 (moto's server), an outlet that fires the asset-scheduled contact sheet, one
createTask per edit and clip and one upload per distinct input, two worker runs per batch."""

from __future__ import annotations

import json

import pytest

from tests.support import AIRFLOW_3, EXAMPLES, RealAirflow

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not AIRFLOW_3, reason="the system test drives Airflow 3's components"),
]

RESULT_BYTES = 8 * 1024 * 1024
INPUTS = sorted((EXAMPLES / "inputs").iterdir())
EDITS = 3 * len(INPUTS)


@pytest.mark.fault(
    fault="triggerer killed mid-copy (half a result written), new triggerer started",
    where="triggerer process, output_path",
    expected="complete files, no partial left, one createTask per edit",
)
def test_content_pipeline_on_a_real_airflow(tmp_path, kie_emulator, s3_server, monkeypatch, record_property):
    kie_emulator.config.update(
        {"waiting_seconds": 0.5, "generating_seconds": 2, "result_bytes": RESULT_BYTES}
    )
    kie_emulator.add_fault("slow-body", "file", delay=120)  # the first result download stalls half-way
    monkeypatch.setenv("KIE_UPLOAD_CACHE_DIR", str(tmp_path / "upload-cache"))
    airflow = RealAirflow(tmp_path / "home", kie_emulator.connection_uri())
    (tmp_path / "home").mkdir()
    local = tmp_path / "home" / "output" / "content"
    s3_folder = f"{s3_server.bucket('kie-system')}/content"
    airflow.start_all()
    try:
        airflow.wait_for("the contact sheet DAG", lambda: airflow.parsed("kie_contact_sheet"))
        airflow.cli("dags", "unpause", "kie_contact_sheet")
        airflow.trigger_dag("kie_content_pipeline")

        def mid_copy():
            with airflow.db() as db:  # the jobs' ledger: its record in chunks, kie_jobs.<k>
                rows = db.execute("SELECT value FROM xcom WHERE key LIKE 'kie_jobs.%'").fetchall()
            chunks = [json.loads(value) for (value,) in rows]
            chunks = [json.loads(chunk) if isinstance(chunk, str) else chunk for chunk in chunks]
            partial = local.is_dir() and any(p.name.startswith(".") for p in local.iterdir())
            # Every Kie task kept, and a copy half-written.
            return sum(len(chunk.get("jobs", {})) for chunk in chunks) == EDITS and partial

        airflow.wait_for("a copy to stall half-way", mid_copy)
        airflow.kill("triggerer")
        airflow.start("triggerer")
        state, _, _ = airflow.wait_for("the run", lambda: airflow.finished_run("kie_content_pipeline"))
        assert state == "success", airflow.log("scheduler")[-3000:]
        airflow.wait_for("the contact sheet", lambda: sheet_entries(local) == 2 * EDITS)

        # The same pipeline, stored in S3: a param of the run.
        airflow.cli(
            "dags", "trigger", "kie_content_pipeline", "--conf", json.dumps({"output_uri": s3_folder})
        )
        state, _, _ = airflow.wait_for("the second run", lambda: airflow.finished_run("kie_content_pipeline"))
        assert state == "success", airflow.describe()
        assert runs(airflow, "success") == 2
        airflow.wait_for(
            "the S3 contact sheet", lambda: "content/contact-sheet.html" in s3_server.keys("kie-system")
        )
        with airflow.db() as db:
            extras = [json.loads(extra) for (extra,) in db.execute("SELECT extra FROM asset_event")]
    finally:
        airflow.stop()
    record_property("create_requests", kie_emulator.count("createTask"))
    record_property("tasks_created", len(kie_emulator.state.tasks))
    assert kie_emulator.count("createTask") == len(kie_emulator.state.tasks) == 2 * 2 * EDITS
    # The inputs once (the second run reused the first run's uploads), and each run's edited stills.
    assert kie_emulator.count("upload") == len(INPUTS) + 2 * EDITS

    names = sorted(p.name for p in local.iterdir())
    assert not [n for n in names if n.startswith(".")]  # the killed copy's partial was cleaned up
    pngs = [n for n in names if n.endswith(".png")]
    assert len(pngs) == EDITS and all((local / n).stat().st_size == RESULT_BYTES for n in pngs)
    mp4s = [n for n in names if n.endswith(".mp4")]
    assert len(mp4s) == EDITS and all((local / n).stat().st_size == RESULT_BYTES for n in mp4s)
    assert len([n for n in names if n.endswith(".json")]) == 2 * EDITS
    s3_keys = s3_server.keys("kie-system", "content/")
    assert len([k for k in s3_keys if k.endswith(".png")]) == EDITS
    assert len([k for k in s3_keys if k.endswith(".mp4")]) == EDITS
    assert len([k for k in s3_keys if k.endswith(".json")]) == 2 * EDITS

    assert len(extras) == 4  # each batch's outlet fired once per run
    stored = sorted(uri for extra in extras for uri in extra["stored"])
    assert stored == sorted(
        [f"file://{local}/{n}" for n in pngs + mp4s]
        + [f"{s3_folder}/{k[8:]}" for k in s3_keys if k.endswith((".png", ".mp4"))]
    )
    assert {task for e in extras for task in e["kie_task_ids"]} == set(kie_emulator.state.tasks)
    assert airflow.worker_runs("edit") and len(airflow.worker_runs("edit")) == 4  # 2 per batch of 6 edits


def sheet_entries(folder) -> int:
    page = folder / "contact-sheet.html"
    return page.read_text().count("<figure>") if page.exists() else 0


def runs(airflow: RealAirflow, state: str) -> int:
    with airflow.db() as db:
        return db.execute(
            "SELECT count(*) FROM dag_run WHERE dag_id = 'kie_content_pipeline' AND state = ?", (state,)
        ).fetchone()[0]
