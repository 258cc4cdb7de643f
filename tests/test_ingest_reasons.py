"""Every record-level reason code of ingest/reasons.py is produced by at least one bad line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from kap.settings import Settings
from kap.pipeline import step_ingest
from ingest.reasons import RECORD_REASONS

FIX = Path(__file__).parent / "fixtures" / "ingest" / "landing"
DOSING_HEADER = (FIX / "dosing" / "2025-06-01" / "dosing.000.csv").read_text(encoding="utf-8-sig").splitlines()[0]
GOOD_DOSE = dict(zip(DOSING_HEADER.split(","), (
    "d-9,clinic-01,MRN-700001,IV,ketamine,40,0.5,80,2025-05-05T09:10:00-07:00,2025-05-05T09:50:00-07:00,"
    "2025-05-05T11:10:00-07:00,128,82,142,90,126,80,72,96,18,4,false,cl-1,,2025-05-05T12:00:00-07:00,,"
).split(",")))
GOOD_NOTE = {"note_id": "n-9", "patient_mrn": "MRN-700001", "clinic_id": "clinic-01", "therapist_id": "th-1",
             "session_type": "integration", "modality": "ACT", "session_start": "2025-05-05T15:00:00-07:00",
             "session_end": "2025-05-05T15:50:00-07:00", "attended": True, "signed_at": "2025-05-05T16:00:00-07:00",
             "text": "Felt calm."}


def obs(**kw) -> str:
    r = {"resourceType": "Observation", "id": "o-9", "meta": {"versionId": "1", "lastUpdated": "2025-05-02T10:00:00Z"},
         "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
         "subject": {"reference": "Patient/p-0001"}, "effectiveDateTime": "2025-05-02T09:00:00-07:00",
         "valueInteger": 11}
    for k, v in kw.items():
        if v is None:
            r.pop(k, None)
        else:
            r[k] = v
    return json.dumps(r)


def dose(**kw) -> str:
    row = dict(GOOD_DOSE, **kw)
    return ",".join(row[c] for c in DOSING_HEADER.split(","))


def note(**kw) -> str:
    return json.dumps(dict(GOOD_NOTE, **kw))


ENC = json.dumps({"resourceType": "Encounter", "id": "e-9", "status": "finished",
                  "subject": {"reference": "Patient/p-0002"},
                  "period": {"start": "2025-05-06T10:00:00Z", "end": "2025-05-06T09:00:00Z"}})

# (case id, source, file name, lines (str or bytes), expected reason of the LAST line)
CASES = [
    ("ehr-unparseable", "ehr", "Observation.9.ndjson", ['{"resourceType": "Observation", "id": "x"'], "unparseable"),
    ("ehr-invalid-encoding", "ehr", "Observation.9.ndjson", [obs(), b'{"resourceType": "Observation", "id": "\xff\xfe"}'],
     "invalid_encoding"),
    ("ehr-not-an-object", "ehr", "Observation.9.ndjson", ["[1, 2, 3]"], "not_an_object"),
    ("ehr-no-resource-type", "ehr", "Observation.9.ndjson", ['{"id": "x1", "status": "final"}'], "missing_resource_type"),
    ("ehr-missing-subject", "ehr", "Observation.9.ndjson", [obs(subject=None)], "missing_required_field"),
    ("ehr-bad-timestamp", "ehr", "Observation.9.ndjson", [obs(effectiveDateTime="yesterday")], "wrong_type"),
    ("ehr-bad-value", "ehr", "Observation.9.ndjson", [obs(valueInteger=None, valueString="eleven")], "wrong_type"),
    ("ehr-bad-status", "ehr", "Observation.9.ndjson", [obs(status="finalised")], "invalid_code"),
    ("ehr-non-string-resource-type", "ehr", "Observation.9.ndjson", [obs(resourceType=42)], "wrong_type"),
    ("ehr-unknown-route", "ehr", "MedicationAdministration.9.ndjson", [json.dumps({
        "resourceType": "MedicationAdministration", "id": "ma-9", "status": "completed",
        "meta": {"versionId": "1", "lastUpdated": "2025-05-02T10:00:00Z"},
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                  "code": "6130", "display": "ketamine"}]},
        "subject": {"reference": "Patient/p-0001"}, "effectiveDateTime": "2025-05-02T09:00:00-07:00",
        "dosage": {"route": {"coding": [{"system": "http://snomed.info/sct", "code": "999999"}]},
                   "dose": {"value": 40, "unit": "mg"}}})], "invalid_code"),
    ("ehr-data-absent", "ehr", "Observation.9.ndjson",
     [obs(valueInteger=None, dataAbsentReason={"coding": [{"code": "asked-declined"}]})], "missing_value"),
    ("ehr-unknown-code", "ehr", "Observation.9.ndjson",
     [obs(code={"coding": [{"system": "http://loinc.org", "code": "1234-5"}]})], "unknown_instrument"),
    ("ehr-phq9-35", "ehr", "Observation.9.ndjson", [obs(valueInteger=35)], "out_of_range"),
    ("ehr-bp-400", "ehr", "Observation.9.ndjson", [obs(
        code={"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}, valueInteger=None,
        component=[{"code": {"coding": [{"code": "8480-6"}]}, "valueQuantity": {"value": 400}},
                   {"code": {"coding": [{"code": "8462-4"}]}, "valueQuantity": {"value": 80}}])], "out_of_range"),
    ("ehr-unknown-patient", "ehr", "Observation.9.ndjson", [obs(subject={"reference": "Patient/p-9999"})], "unknown_patient"),
    ("ehr-unknown-mrn", "ehr", "Observation.9.ndjson",
     [obs(subject={"reference": "Patient?identifier=urn:oid:1.2.3.4|MRN-000000"})], "unknown_patient"),
    ("ehr-future", "ehr", "Observation.9.ndjson", [obs(effectiveDateTime="2999-01-01T00:00:00Z")], "future_time"),
    ("ehr-before-birth", "ehr", "Observation.9.ndjson", [obs(effectiveDateTime="1970-01-01T00:00:00Z")], "before_birth"),
    ("ehr-end-before-start", "ehr", "Encounter.9.ndjson", [ENC], "end_before_start"),
    ("ehr-conflict", "ehr", "Observation.9.ndjson", [obs(id="o-1", valueInteger=5,
                                                         meta={"versionId": "1", "lastUpdated": "2025-05-02T10:00:00Z"})],
     "conflicting_duplicate"),
    ("ehr-dup-in-file", "ehr", "Observation.9.ndjson", [obs(), obs()], "duplicate_in_file"),
    ("dosing-unparseable", "dosing", "d.csv", [DOSING_HEADER, "d-9,clinic-01,MRN-700001,IV"], "unparseable"),
    ("dosing-quoted-comma", "dosing", "d.csv", [DOSING_HEADER, dose(clinician_id='"cl,1"', route="XX")], "invalid_code"),
    ("dosing-missing", "dosing", "d.csv", [DOSING_HEADER, dose(clinician_id="")], "missing_required_field"),
    ("dosing-wrong-type", "dosing", "d.csv", [DOSING_HEADER, dose(dose_mg="forty")], "wrong_type"),
    ("dosing-bad-bool", "dosing", "d.csv", [DOSING_HEADER, dose(is_booster="perhaps")], "wrong_type"),
    ("dosing-route", "dosing", "d.csv", [DOSING_HEADER, dose(route="XX")], "invalid_code"),
    ("dosing-formula-id", "dosing", "d.csv", [DOSING_HEADER, dose(dosing_id="@SUM(1+1)")], "invalid_identifier"),
    ("notes-formula-clinic", "notes", "n.jsonl", [note(clinic_id="=HYPERLINK(1)")], "invalid_identifier"),
    ("dosing-dose", "dosing", "d.csv", [DOSING_HEADER, dose(dose_mg="500")], "out_of_range"),
    ("dosing-spo2", "dosing", "d.csv", [DOSING_HEADER, dose(spo2_min="140")], "out_of_range"),
    ("dosing-unknown-mrn", "dosing", "d.csv", [DOSING_HEADER, dose(patient_mrn="MRN-000000")], "unknown_patient"),
    ("ehr-identity-conflict", "ehr", "Patient.9.ndjson", [json.dumps({
        "resourceType": "Patient", "id": "p-9999", "meta": {"versionId": "1", "lastUpdated": "2025-05-02T10:00:00Z"},
        "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                        "system": "urn:oid:1.2.3.4", "value": "MRN-700001"}],
        "gender": "female", "birthDate": "1985-01-01"})], "identity_conflict"),
    ("dosing-unknown-clinic", "dosing", "d.csv", [DOSING_HEADER, dose(clinic_id="clinic-99")], "unknown_clinic"),
    ("dosing-end", "dosing", "d.csv", [DOSING_HEADER, dose(end_at="2025-05-05T08:00:00-07:00")], "end_before_start"),
    ("dosing-dup", "dosing", "d.csv", [DOSING_HEADER, dose(), dose()], "duplicate_in_file"),
    # no UTC offset, at a clinic with no time zone (no extension, no KAP_CLINIC_TIMEZONES, no KAP_TIMEZONE)
    ("dosing-no-offset", "dosing", "d.csv", [DOSING_HEADER, dose(clinic_id="clinic-00", start_at="2025-05-05T09:10:00",
                                                                 end_at="2025-05-05T09:50:00")], "timestamp_without_offset"),
    ("notes-not-object", "notes", "n.jsonl", ['"just a string"'], "not_an_object"),
    ("notes-encoding", "notes", "n.jsonl", [b'{"note_id": "n-9", "text": "caf\xe9"}'], "invalid_encoding"),
    ("notes-session-type", "notes", "n.jsonl", [note(session_type="yoga")], "invalid_code"),
    ("notes-attended", "notes", "n.jsonl", [note(attended="maybe")], "wrong_type"),
    ("notes-missing", "notes", "n.jsonl", [note(therapist_id="")], "missing_required_field"),
    ("notes-end", "notes", "n.jsonl", [note(session_end="2025-05-05T14:00:00-07:00")], "end_before_start"),
    ("ehr-recorded-after-ingest", "ehr", "Observation.9.ndjson",
     [obs(meta={"versionId": "2", "lastUpdated": "9999-12-31T00:00:00Z"})], "recorded_after_ingest"),
    ("notes-future", "notes", "n.jsonl", [note(session_start="2999-05-05T14:00:00Z",
                                              session_end="2999-05-05T15:00:00Z")], "future_time"),
]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Settings:
    """Patients and the first Observation file ingested."""
    land = tmp_path_factory.mktemp("base_landing")
    for rel in ("ehr/2025-06-01/Organization.000.ndjson", "ehr/2025-06-01/Patient.000.ndjson",
                "ehr/2025-06-01/Observation.000.ndjson"):
        (land / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIX / rel, land / rel)
    s = Settings.from_env(tmp_path_factory.mktemp("base") / "home")
    assert step_ingest(land, s).ok
    return s


@pytest.mark.parametrize("case_id, source, name, lines, expected", CASES, ids=[c[0] for c in CASES])
def test_reason_code(base, tmp_path, case_id, source, name, lines, expected):
    s = Settings.from_env(tmp_path / "home")
    shutil.copytree(base.home, s.home)
    land = tmp_path / "land" / source
    land.mkdir(parents=True)
    data = b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n" for ln in lines)
    (land / name).write_bytes(data)
    r = step_ingest(land.parent, s)
    f = r.files[0]
    assert f.status == "ingested", f
    assert f.records_read == f.records_accepted + f.records_quarantined + f.records_duplicate + f.records_ignored
    con = duckdb.connect(str(s.warehouse), read_only=True)
    rows = con.execute("SELECT line_number, reason_code, detail FROM raw.quarantine WHERE file_id = ? "
                       "ORDER BY line_number", [f.file_id]).fetchall()
    stored = con.execute("SELECT records_read, records_quarantined FROM raw.ingest_files WHERE file_id = ?",
                         [f.file_id]).fetchone()
    con.close()
    assert rows and rows[-1][1] == expected and rows[-1][0] == len(lines), rows
    assert stored == (f.records_read, f.records_quarantined)


# reasons that never fall on a file's last line, each with its own test elsewhere
ELSEWHERE = {
    # the earlier of two versions without meta; the later line wins
    "superseded_in_file": "test_event_log_semantics.py::test_fault_7_without_meta_the_later_line_of_a_resource_wins_deterministically",
}


def test_every_record_reason_has_a_case():
    assert {c[-1] for c in CASES} | set(ELSEWHERE) == set(RECORD_REASONS)
