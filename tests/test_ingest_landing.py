"""Landing discovery and file-level rejections (ingest.landing + loader)."""
from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import duckdb

from ingest import landing
from kap.settings import Settings
from kap.pipeline import step_ingest

FIX = Path(__file__).parent / "fixtures" / "ingest" / "landing"
OBS = FIX / "ehr" / "2025-06-01" / "Observation.000.ndjson"
PAT = FIX / "ehr" / "2025-06-01" / "Patient.000.ndjson"


def _files(s: Settings):
    con = duckdb.connect(str(s.warehouse), read_only=True)
    try:
        return {r[0]: r[1:] for r in con.execute(
            "SELECT path, status, reject_reason, records_read FROM raw.ingest_files").fetchall()}
    finally:
        con.close()


def test_discovery_order_layout_and_ignored(tmp_path):
    (tmp_path / "ehr" / "drop1" / "deeper").mkdir(parents=True)
    (tmp_path / "dosing").mkdir()
    shutil.copy(OBS, tmp_path / "ehr" / "drop1" / "Observation.000.ndjson")
    shutil.copy(PAT, tmp_path / "ehr" / "Patient.000.ndjson")
    (tmp_path / "ehr" / "README.txt").write_text("hi")
    (tmp_path / "dosing" / "log.csv").write_text("x")
    (tmp_path / "other.txt").write_text("x")
    d = landing.discover(tmp_path)
    assert [f.rel_path for f in d.files] == ["ehr/Patient.000.ndjson", "ehr/drop1/Observation.000.ndjson",
                                             "dosing/log.csv"]
    assert {"ehr/README.txt", "other.txt", "ehr/drop1/deeper/"} <= set(d.ignored)


def test_file_level_rejections(tmp_path):
    land = tmp_path / "land"
    ehr = land / "ehr"
    ehr.mkdir(parents=True)
    shutil.copy(PAT, ehr / "Patient.000.ndjson")
    (ehr / "Empty.ndjson").write_bytes(b"")
    (ehr / "Blank.ndjson").write_text("\n  \n\n")
    (ehr / "Zipped.ndjson").write_bytes(gzip.compress(PAT.read_bytes()))
    (ehr / "Broken.ndjson.gz").write_bytes(b"\x1f\x8b not really gzip")
    (ehr / "Observation.000.ndjson.gz").write_bytes(gzip.compress(OBS.read_bytes()))
    outside = tmp_path / "outside.ndjson"
    shutil.copy(OBS, outside)
    os.symlink(outside, ehr / "Escape.ndjson")
    os.symlink(ehr / "Patient.000.ndjson", ehr / "Inside.ndjson")   # a symlink inside is fine
    dosing = land / "dosing"
    dosing.mkdir()
    (dosing / "NoCols.csv").write_text("dosing_id,clinic_id\nd-1,c-1\n")
    (dosing / "HeaderOnly.csv").write_text((FIX / "dosing" / "2025-06-01" / "dosing.000.csv")
                                           .read_text(encoding="utf-8-sig").splitlines()[0] + "\n")
    s = Settings.from_env(tmp_path / "home")
    r = step_ingest(land, s)
    by = {f.path: f for f in r.files}
    assert r.ok
    assert by["ehr/Empty.ndjson"].reject_reason == "empty_file"
    assert by["ehr/Blank.ndjson"].reject_reason == "empty_file"
    assert by["ehr/Zipped.ndjson"].reject_reason == "compressed_without_extension"
    assert by["ehr/Broken.ndjson.gz"].reject_reason == "unreadable"
    assert by["ehr/Escape.ndjson"].reject_reason == "outside_landing"
    assert by["dosing/NoCols.csv"].reject_reason == "missing_columns"
    assert "patient_mrn" in by["dosing/NoCols.csv"].detail
    assert by["dosing/HeaderOnly.csv"].reject_reason == "empty_file"
    gz = by["ehr/Observation.000.ndjson.gz"]
    assert (gz.status, gz.records_read, gz.records_accepted) == ("ingested", 7, 7)
    # the symlink inside has the same bytes as Patient.000: same sha256, so it is not read twice
    assert by["ehr/Inside.ndjson"].status == "skipped"
    stored = _files(s)
    for path in ("ehr/Empty.ndjson", "ehr/Zipped.ndjson", "ehr/Escape.ndjson", "dosing/NoCols.csv"):
        assert stored[path][0] == "rejected" and stored[path][2] == 0
    # rejected files are not retried
    again = step_ingest(land, s)
    assert again.totals["files_skipped"] == len(again.files)


def test_unstable_file_is_not_recorded_and_retried(tmp_path, monkeypatch):
    land = tmp_path / "land" / "ehr"
    land.mkdir(parents=True)
    shutil.copy(PAT, land / "Patient.000.ndjson")
    s = Settings.from_env(tmp_path / "home")
    real = landing.FileStat.of
    calls = {"n": 0}

    def growing(path):                  # the exporter appends while we read
        st = real(path)
        calls["n"] += 1
        return landing.FileStat(st.size + calls["n"], st.mtime_ns)

    monkeypatch.setattr(landing.FileStat, "of", staticmethod(growing))
    r = step_ingest(land.parent, s)
    assert (r.files[0].status, r.files[0].reject_reason) == ("unstable", "unstable_file")
    assert _files(s) == {}
    monkeypatch.undo()
    r = step_ingest(land.parent, s)
    assert r.files[0].status == "ingested" and r.files[0].records_accepted == 3


def test_bom_crlf_blank_lines_and_line_numbers(tmp_path):
    land = tmp_path / "land" / "ehr"
    land.mkdir(parents=True)
    lines = PAT.read_text().splitlines()
    (land / "Patient.000.ndjson").write_bytes(
        ("\ufeff" + lines[0] + "\r\n\r\n" + lines[1] + "\r\n   \r\n{broken\r\n" + lines[2]).encode())
    s = Settings.from_env(tmp_path / "home")
    f = step_ingest(land.parent, s).files[0]
    assert (f.records_read, f.records_accepted, f.records_quarantined) == (4, 3, 1)
    con = duckdb.connect(str(s.warehouse), read_only=True)
    assert con.execute("SELECT line_number, reason_code FROM raw.quarantine").fetchall() == [(5, "unparseable")]
    con.close()
