"""The gate in the pipeline: a critical fault stops the run before publishing and the last good
analytics.duckdb stays byte-identical; warning-level faults pass and are published in dq_results.

These run the real ingest (ingest.loader) on the session's generated clinic; the dbt build is
replaced by hand-made good marts so the tests stay quick (dbt has its own tests).
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from kap import pipeline
from kap.settings import Settings
from kap.quality import CriticalCheckFailed, validate
from kap.quality.targets import LANDING_VIEWS, bind, relation_sql
from kap.warehouse import writer
from test_quality_data import good_marts


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _good_marts_build(settings: Settings, as_of=None, full_refresh=False, stages=None, full_checks=False):
    """dbt build stand-in: good marts in the warehouse."""
    with writer(settings) as con:
        good_marts(con)


@pytest.fixture
def fake_build(monkeypatch):
    monkeypatch.setattr(pipeline, "step_build", _good_marts_build)


@pytest.fixture(scope="module")
def first_run(small_landing, tmp_path_factory) -> tuple[Settings, pipeline.RunSummary]:
    """The small clinic's first night (run-1, the stand-in build), once; tests copy its home."""
    settings = Settings(home=(tmp_path_factory.mktemp("gate") / "kap_home").resolve()).ensure_dirs()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "step_build", _good_marts_build)
        summary = pipeline.run(small_landing, settings, run_id="run-1")
    assert summary.published == settings.analytics
    return settings, summary


@pytest.fixture
def after_first_run(first_run, tmp_path, fake_build) -> Settings:
    """A home of this test's own, as the first night left it."""
    shutil.copytree(first_run[0].home, tmp_path / "kap_home")
    return Settings(home=(tmp_path / "kap_home").resolve()).ensure_dirs()


def _drop(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    return folder


def _dosing_without_column(small_landing: Path, out: Path, column: str) -> None:
    with (small_landing / "dosing" / "dosing_log.csv").open(newline="") as src:
        rows = list(csv.DictReader(src))
    out.mkdir(parents=True)
    fields = [f for f in rows[0] if f != column]
    with (out / "dosing_log_2025-03-09.csv").open("w", newline="") as dst:
        writer_ = csv.DictWriter(dst, fieldnames=fields, extrasaction="ignore")
        writer_.writeheader()
        writer_.writerows(rows[:5])


def _first_patient(small_landing: Path) -> str:
    with (small_landing / "ehr" / "Patient.000.ndjson").open() as handle:
        return json.loads(handle.readline())["id"]


def _phq9_file(out: Path, patient_id: str, scores: list[int]) -> None:
    out.mkdir(parents=True)
    lines = []
    for i, score in enumerate(scores):
        lines.append(json.dumps({
            "resourceType": "Observation", "id": f"obs-gate-{i:03d}",
            "meta": {"versionId": "1", "lastUpdated": "2025-03-09T12:00:00Z"}, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "survey"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": f"2025-03-0{1 + i % 8}T10:00:00Z", "valueInteger": score}))
    (out / "Observation.000.ndjson").write_text("\n".join(lines) + "\n")


def test_a_dosing_csv_missing_a_required_column_stops_the_run_and_keeps_analytics(
        after_first_run, small_landing, tmp_path):
    tmp_settings = after_first_run
    before = _sha256(tmp_settings.analytics)

    bad = tmp_path / "landing-2"
    _dosing_without_column(small_landing, bad / "dosing" / "2025-03-09", "dose_mg")
    with pytest.raises(CriticalCheckFailed) as failure:
        pipeline.run(bad, tmp_settings, run_id="run-2")

    message = str(failure.value)
    assert "landing_files_no_schema_rejection" in message
    assert "dosing_log_2025-03-09.csv" in message          # where the failing row is
    assert "raw.ingest_files" in message
    assert _sha256(tmp_settings.analytics) == before
    assert not list(tmp_settings.home.glob("analytics.duckdb.tmp-*"))
    con = duckdb.connect(str(tmp_settings.warehouse), read_only=True)
    try:
        status = con.execute("SELECT status, failed_critical FROM dq.validation_runs "
                             "WHERE run_id = 'run-2' AND stage = 'landing'").fetchone()
    finally:
        con.close()
    assert status[0] == "failed" and status[1] >= 1
    assert (tmp_settings.dq_dir / "run-2.html").exists()


def test_scores_out_of_range_beyond_the_threshold_stop_the_run(after_first_run, small_landing, tmp_path):
    tmp_settings = after_first_run
    before = _sha256(tmp_settings.analytics)
    bad = tmp_path / "landing-2"
    _phq9_file(bad / "ehr" / "2025-03-09", _first_patient(small_landing), [12, 40, 41, 42, 43, 44, 10, 9, 8, 7])
    with pytest.raises(CriticalCheckFailed, match="landing_quarantine_share_critical") as failure:
        pipeline.run(bad, tmp_settings, run_id="run-2")
    assert "out_of_range" in str(failure.value)
    assert _sha256(tmp_settings.analytics) == before


def test_warning_faults_pass_the_gate_and_are_published(first_run):
    tmp_settings, summary = first_run
    outcome = summary.steps["validate_landing"]
    assert outcome.passed and outcome.failed_warning        # the clinic has 1 % faults on purpose
    con = duckdb.connect(str(tmp_settings.analytics), read_only=True)
    try:
        warnings = con.execute("SELECT check_id FROM dq_results WHERE status = 'failed' "
                               "AND severity = 'warning' AND run_id = 'run-1'").fetchall()
        critical = con.execute("SELECT count(*) FROM dq_results WHERE status = 'failed' "
                               "AND severity = 'critical'").fetchone()[0]
        stages = {r[0] for r in con.execute("SELECT DISTINCT stage FROM dq_results").fetchall()}
    finally:
        con.close()
    assert {w[0] for w in warnings} == {r.check_id for r in outcome.failed_warning}
    assert critical == 0
    assert stages == {"landing", "marts"}
    # landing checks read views computed once and carry rowids; the samples are the views' keys
    landing_failures = [r for r in outcome.failed_warning if r.target.startswith("landing.")]
    assert landing_failures
    con = duckdb.connect(str(tmp_settings.warehouse), read_only=True)
    try:
        for r in landing_failures:
            view = LANDING_VIEWS[r.target.split(".", 1)[1]]
            keys = {str(k[0]) for k in con.execute(
                f"SELECT {view.key} FROM {bind(relation_sql(r.target), 'run-1', None)} AS v").fetchall()}
            assert r.failing_keys_sample and set(r.failing_keys_sample) <= keys, r.check_id
    finally:
        con.close()


def test_results_are_stored_and_a_rerun_replaces_them(tmp_settings):
    with writer(tmp_settings) as con:
        good_marts(con)
    first = validate(tmp_settings, "marts", "run-x", as_of="2025-06-01 00:00:00")
    second = validate(tmp_settings, "marts", "run-x", as_of="2025-06-01 00:00:00")
    assert first.status == second.status == "passed"
    con = duckdb.connect(str(tmp_settings.warehouse), read_only=True)
    try:
        runs = con.execute("SELECT count(*) FROM dq.validation_runs WHERE run_id = 'run-x'").fetchone()[0]
        rows = con.execute("SELECT count(*), count(DISTINCT check_id) FROM dq.check_results "
                           "WHERE run_id = 'run-x'").fetchone()
    finally:
        con.close()
    assert runs == 1 and rows[0] == rows[1] == second.checks


def test_the_report_is_offline_html(tmp_settings):
    with writer(tmp_settings) as con:
        good_marts(con)
        con.execute("DROP TABLE marts.clinic_daily")
    outcome = validate(tmp_settings, "marts", "scheduled__2025-06-01T00:00:00+00:00")
    page = outcome.report.read_text()
    assert outcome.report.name == "scheduled__2025-06-01T00_00_00_00_00.html"
    assert (tmp_settings.dq_dir / "latest.html").read_text() == page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "marts_clinic_daily_key_unique" in page and "does not exist" in page
    assert any(r.check_id.startswith("marts_clinic_daily") for r in outcome.not_run)
