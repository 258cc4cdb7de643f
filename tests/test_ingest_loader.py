"""Event-sourced ingestion: exactly once, corrections, identity, atomicity, privacy, docs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from ingest import loader
from kap.settings import Settings
from kap.pipeline import step_ingest

FIX = Path(__file__).parent / "fixtures" / "ingest"
LANDING = FIX / "landing"
REEXPORT = FIX / "reexport"


def _settings(tmp_path: Path, name: str = "home") -> Settings:
    return Settings.from_env(tmp_path / name)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> tuple[Settings, object]:
    """The fixture drop ingested once per module (ingest is ~0.3 s per file); copy before mutating."""
    s = Settings.from_env(tmp_path_factory.mktemp("ingested") / "home")
    return s, step_ingest(LANDING, s)


def _copy(ingested, tmp_path: Path) -> Settings:
    src, _ = ingested
    dst = Settings.from_env(tmp_path / "copy")
    shutil.copytree(src.home, dst.home)
    return dst


def _q(settings: Settings, sql: str, params=None):
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _identity_holds(settings: Settings) -> None:
    rows = _q(settings, """SELECT path, records_read, records_accepted, records_quarantined,
                                  records_duplicate, records_ignored, events_added, file_id
                           FROM raw.ingest_files WHERE status = 'ingested'""")
    assert rows
    for path, read, acc, quar, dup, ign, added, file_id in rows:
        assert read == acc + quar + dup + ign, path
        assert added == acc
        assert _q(settings, "SELECT count(*) FROM raw.events WHERE file_id = ?", [file_id])[0][0] == added
        assert _q(settings, "SELECT count(*) FROM raw.quarantine WHERE file_id = ?", [file_id])[0][0] == quar


def test_fixture_drop_ingests_every_type(ingested):
    s, summary = ingested
    assert summary.ok and summary.totals["files_ingested"] == 17
    types = {r[0] for r in _q(s, "SELECT DISTINCT event_type FROM raw.events")}
    assert {"patient_registered", "clinic_registered", "referral_received", "appointment_booked",
            "appointment_cancelled", "encounter_consult", "encounter_dosing", "encounter_integration",
            "episode_opened", "condition_recorded", "screening_decided", "assessment_scored",
            "vital_signs_recorded", "medication_administered", "adverse_event_reported", "consent_recorded",
            "questionnaire_answered", "ehr_document_recorded", "dose_administered",
            "therapy_note_documented", "staff_registered"} <= types
    _identity_holds(s)
    # payload fields exactly as catalogued
    from ingest.events import BY_NAME
    for etype, payload in _q(s, "SELECT event_type, payload FROM raw.events"):
        assert set(json.loads(payload)) == set(BY_NAME[etype].payload), etype
    # bitemporal columns are UTC and the patient link is set for clinical events
    bp = _q(s, "SELECT occurred_at, payload->>'$.systolic' FROM raw.events "
               "WHERE source_record_id = 'Observation/o-5'")
    assert str(bp[0][0]) == "2025-05-05 17:00:00" and bp[0][1] == "128.0"
    assert _q(s, "SELECT count(*) FROM raw.events WHERE patient_key IS NULL "
                 "AND event_type NOT IN ('clinic_registered', 'staff_registered', 'staff_role_recorded')")[0][0] == 0
    # conditional reference (Patient?identifier=system|MRN) resolved to the same key as Patient/p-0001
    keys = _q(s, "SELECT DISTINCT patient_key FROM raw.events WHERE source_record_id IN "
                 "('Encounter/e-1', 'Patient/p-0001', 'd-1', 'n-1')")
    assert len(keys) == 1


def test_reingest_same_drop_adds_nothing(ingested, tmp_path):
    s = _copy(ingested, tmp_path)
    first = ingested[1]
    n = _q(s, "SELECT count(*) FROM raw.events")[0][0]
    second = step_ingest(LANDING, s)
    assert first.totals["events_added"] == n > 0
    assert second.totals["events_added"] == 0
    assert second.totals["files_skipped"] == len(second.files)
    assert _q(s, "SELECT count(*) FROM raw.events")[0][0] == n


def test_same_content_under_new_name_counts_duplicates(ingested, tmp_path):
    s = _copy(ingested, tmp_path)
    land2 = tmp_path / "land2" / "ehr"
    land2.mkdir(parents=True)
    # same records, different bytes (one extra blank line) -> new file, every record a duplicate
    src = (LANDING / "ehr" / "2025-06-01" / "Observation.000.ndjson").read_text()
    (land2 / "Observation.000.ndjson").write_text(src + "\n")
    r = step_ingest(land2.parent, s)
    f = r.files[0]
    assert (f.records_read, f.records_duplicate, f.events_added) == (7, 7, 0)


def test_reexport_with_corrections_and_retraction_adds_four(ingested, tmp_path):
    s = _copy(ingested, tmp_path)
    before = _q(s, "SELECT count(*) FROM raw.events")[0][0]
    r = step_ingest(REEXPORT, s)
    assert r.totals["events_added"] == 4
    assert r.totals["records_duplicate"] == 1
    assert _q(s, "SELECT count(*) FROM raw.events")[0][0] == before + 4
    retracted = _q(s, "SELECT source_record_id, payload->>'$.reason' FROM raw.events "
                      "WHERE event_type = 'record_retracted'")
    assert retracted == [("Observation/o-4", "entered-in-error")]
    versions = _q(s, "SELECT payload->>'$.score', recorded_at FROM raw.events "
                     "WHERE source_record_id = 'Observation/o-1' ORDER BY recorded_at")
    assert [v[0] for v in versions] == ["18.0", "17.0"]
    _identity_holds(s)


def test_corrections_in_dosing_and_notes(ingested, tmp_path):
    s = _copy(ingested, tmp_path)
    d2 = _q(s, "SELECT payload->>'$.dose_mg', payload->>'$.is_amended' FROM raw.events "
               "WHERE source_record_id = 'd-2' ORDER BY recorded_at")
    assert d2 == [("56.0", "false"), ("84.0", "true")]
    land = tmp_path / "void" / "dosing"
    land.mkdir(parents=True)
    header = (LANDING / "dosing" / "2025-06-01" / "dosing.000.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    cols = header.split(",")
    row = dict.fromkeys(cols, "")
    row.update(dosing_id="d-1", patient_mrn="MRN-700001", recorded_at="2025-05-05T12:00:00-07:00",
               amended_at="2025-05-09T08:00:00-07:00", is_void="true")
    (land / "void.csv").write_text(header + "\n" + ",".join(row[c] for c in cols) + "\n")
    r = step_ingest(land.parent, s)
    assert r.totals["events_added"] == 1
    assert _q(s, "SELECT event_type, payload->>'$.reason' FROM raw.events WHERE source = 'dosing' "
                 "AND source_record_id = 'd-1' ORDER BY recorded_at DESC LIMIT 1") == [("record_retracted", "void")]


def test_practitioner_becomes_a_staff_event_without_its_name(ingested):
    """Practitioner is read (staff for the care-team marts): one event with the id, no name."""
    s, r = ingested
    prac = [f for f in r.files if f.path.endswith("Practitioner.000.ndjson")][0]
    assert (prac.status, prac.records_read, prac.records_ignored, prac.events_added) == ("ingested", 1, 0, 1)
    rows = _q(s, "SELECT event_type, patient_key, payload->>'$.staff_id', payload::VARCHAR FROM raw.events "
                 "WHERE source_record_id = 'Practitioner/pr-1'")
    assert [row[:3] for row in rows] == [("staff_registered", None, "pr-1")]
    assert "Grimsby" not in rows[0][3] and "Ottoline" not in rows[0][3]


def test_patient_keys_are_random_not_derived(tmp_path):
    a, b = _settings(tmp_path, "a"), _settings(tmp_path, "b")
    patients = tmp_path / "patients" / "ehr"
    patients.mkdir(parents=True)
    shutil.copy(LANDING / "ehr" / "2025-06-01" / "Patient.000.ndjson", patients)
    step_ingest(patients.parent, a)
    step_ingest(patients.parent, b)
    ka = dict(((s, v), k) for k, s, v in _q(a, "SELECT patient_key, id_system, id_value FROM restricted.patient_keys"))
    kb = dict(((s, v), k) for k, s, v in _q(b, "SELECT patient_key, id_system, id_value FROM restricted.patient_keys"))
    assert set(ka) == set(kb) == {("fhir", "p-0001"), ("fhir", "p-0002"), ("fhir", "p-0003"),
                                  ("mrn", "MRN-700001"), ("mrn", "MRN-700002"), ("mrn", "MRN-700003")}
    assert all(ka[k] != kb[k] for k in ka)                    # different warehouses, different keys
    assert ka[("fhir", "p-0001")] == ka[("mrn", "MRN-700001")]  # one key per person
    import hashlib
    import uuid
    for (system, value), key in ka.items():
        uuid.UUID(key)  # a UUID
        assert key not in {hashlib.sha256(value.encode()).hexdigest(), hashlib.md5(value.encode()).hexdigest()}
        assert value not in key


def test_crash_mid_transaction_leaves_nothing(tmp_path, monkeypatch):
    s = _settings(tmp_path)
    land = tmp_path / "land"
    for rel in ("ehr/2025-06-01/Organization.000.ndjson", "ehr/2025-06-01/Patient.000.ndjson",
                "ehr/2025-06-01/Observation.000.ndjson", "dosing/2025-06-01/dosing.000.csv",
                "notes/notes.000.jsonl"):
        (land / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(LANDING / rel, land / rel)

    def boom(*args, **kwargs):
        raise RuntimeError("killed after the events were inserted")

    monkeypatch.setattr(loader, "_write_quarantine", boom)
    r = step_ingest(land, s)
    assert all(f.status == "failed" for f in r.files)
    assert _q(s, "SELECT count(*) FROM raw.events")[0][0] == 0
    assert _q(s, "SELECT count(*) FROM raw.ingest_files")[0][0] == 0
    assert _q(s, "SELECT count(*) FROM restricted.patient_keys")[0][0] == 0
    # also when ingest_file is called directly: it re-raises after the rollback
    from kap import warehouse
    with warehouse.writer(s) as con, pytest.raises(RuntimeError):
        loader.ingest_file(con, land, land / "ehr" / "2025-06-01" / "Patient.000.ndjson", "ehr", "t",
                           loader._utcnow())
    monkeypatch.undo()
    r = step_ingest(land, s)          # the next run ingests everything, once
    assert r.ok and r.totals["files_ingested"] == 5
    # the clinic the doses and notes name is in the drop, so none of them is parked
    assert _q(s, "SELECT count(*) FROM raw.events")[0][0] == r.totals["events_added"] == 1 + 3 + 7 + 4 + 3


def identifiers_in(landing: Path) -> set[str]:
    """Every direct identifier and note sentence the landing folder holds (read back from it)."""
    found: set[str] = set()
    for f in sorted(landing.rglob("Patient*.ndjson")):
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if not isinstance(r, dict):
                continue
            for n in r.get("name") or []:
                found.update([n.get("family") or ""] + list(n.get("given") or []))
            found.update(i.get("value") or "" for i in r.get("identifier") or [])
            found.update(t.get("value") or "" for t in r.get("telecom") or [])
            for a in r.get("address") or []:
                found.update(a.get("line") or [])
    for f in sorted(landing.rglob("*.jsonl")):
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict) and isinstance(r.get("text"), str):
                found.update(s.strip() for s in r["text"].split(".") if len(s.strip()) > 25)
            if isinstance(r, dict) and isinstance(r.get("patient_mrn"), str):
                found.add(r["patient_mrn"])
    return {x for x in found if isinstance(x, str) and len(x) >= 4}


def assert_no_identifiers(settings: Settings, identifiers: set[str]) -> None:
    assert identifiers
    blobs = [r[0] for r in _q(settings, "SELECT payload::VARCHAR FROM raw.events")]
    blobs += [f"{r[0]} {r[1]}" for r in _q(settings, "SELECT coalesce(raw_record, ''), coalesce(detail, '') "
                                                     "FROM raw.quarantine")]
    text = "\n".join(blobs)
    leaked = sorted(x for x in identifiers if x in text)
    assert not leaked, leaked[:10]


def test_no_direct_identifiers_in_events_or_quarantine(tmp_path):
    land = tmp_path / "land"
    shutil.copytree(LANDING, land)
    # rejected records carrying identifiers: they must reach quarantine redacted
    pat = json.loads((LANDING / "ehr" / "2025-06-01" / "Patient.000.ndjson").read_text().splitlines()[0])
    no_mr = dict(pat, id="p-0009", identifier=[i for i in pat["identifier"] if i["type"]["coding"][0]["code"] != "MR"])
    bad_ehr = [json.dumps(no_mr), json.dumps(pat)[:200],
               json.dumps({"resourceType": "Observation", "id": "ox", "status": "final",
                           "subject": {"reference": "Patient?identifier=urn:oid:1.2.3.4|MRN-700001",
                                       "display": "Zebulon Quackenbush"},
                           "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                           "effectiveDateTime": "2025-05-02", "valueInteger": 99})]
    (land / "ehr" / "2025-06-01" / "Patient.001.ndjson").write_text("\n".join(bad_ehr) + "\n")
    notes = (LANDING / "notes" / "notes.000.jsonl").read_text().splitlines()
    n0 = json.loads(notes[0])
    (land / "notes" / "bad.jsonl").write_text("\n".join([
        json.dumps(dict(n0, patient_mrn="MRN-999999")),          # unknown patient, with text
        json.dumps(dict(n0, note_id="n-9", session_type="yoga")),  # invalid code, with text
        json.dumps(n0)[:150],                                     # unparseable, text cut off
    ]) + "\n")
    s = _settings(tmp_path)
    r = step_ingest(land, s)
    assert r.ok and r.totals["records_quarantined"] >= 6
    ids = identifiers_in(land)
    assert {"Quackenbush", "MRN-700001", "555-31-0001", "+1-555-0101", "12 Wisteria Lane"} <= ids
    assert_no_identifiers(s, ids | {"Zebulon", "Quackenbush", "MRN-999999", "lighthouse of his childhood"})
    # the quarantined note keeps no text at all, but its reason and line
    rows = _q(s, "SELECT q.line_number, q.reason_code, q.raw_record FROM raw.quarantine q "
                 "JOIN raw.ingest_files f USING (file_id) WHERE f.path = 'notes/bad.jsonl' ORDER BY 1")
    assert [(n, c) for n, c, _ in rows] == [(1, "unknown_patient"), (2, "invalid_code"), (3, "unparseable")]
    assert '"text"' not in rows[0][2] and "note_id" in rows[0][2]


def test_ingesting_one_source_at_a_time_equals_one_pass(ingested, tmp_path):
    # the nightly DAG ingests ehr, then dosing and notes, as separate tasks
    _, whole = ingested
    s = _settings(tmp_path, "by_source")
    parts = [step_ingest(LANDING, s, sources=[source]) for source in ("ehr", "dosing", "notes")]
    assert [{f.source for f in part.files} for part in parts] == [{"ehr"}, {"dosing"}, {"notes"}]
    assert sorted((f.path, f.status, f.records_accepted, f.records_quarantined)
                  for part in parts for f in part.files) == \
        sorted((f.path, f.status, f.records_accepted, f.records_quarantined) for f in whole.files)
    assert _q(s, "SELECT count(*) FROM raw.events")[0][0] == _q(ingested[0], "SELECT count(*) FROM raw.events")[0][0]
