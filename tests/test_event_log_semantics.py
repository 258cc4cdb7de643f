"""Event-log semantics: bounded knowledge time, "now" as the knowledge cutoff, Bulk Data manifests,
identities that never merge two people, parked records that come back, plausible birth dates.

Each fault the pipeline once had gets a test named after it (`test_fault_<n>_...`); the rest pin the
rules of docs/inputs.md ("Knowledge time", "Bulk Data manifest", "Identity", "Parked records").
Landing folders are written by hand, record by record, so every expectation is worked out here.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from kap.pipeline import step_ingest
from kap.settings import Settings

MR = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
      "system": "urn:oid:1.2.3.4"}
DOSING_HEADER = ("dosing_id,clinic_id,patient_mrn,route,drug,dose_mg,dose_mg_per_kg,weight_kg,start_at,end_at,"
                 "monitoring_end_at,bp_pre_systolic,bp_pre_diastolic,bp_40min_systolic,bp_40min_diastolic,"
                 "bp_discharge_systolic,bp_discharge_diastolic,heart_rate_pre,spo2_min,cadss_total,moaas_min,"
                 "is_booster,clinician_id,rems_form_submitted_on,recorded_at,amended_at,is_void")


def patient(pid: str, mrn: str, updated: str | None = "2025-05-01T08:00:00Z", version: str | None = "1",
            birth: str = "1980-04-12", **extra) -> dict:
    r = {"resourceType": "Patient", "id": pid, "identifier": [dict(MR, value=mrn)], "gender": "female",
         "birthDate": birth, "managingOrganization": {"reference": "Organization/clinic-01"}, **extra}
    meta = {k: v for k, v in (("versionId", version), ("lastUpdated", updated)) if v is not None}
    if meta:
        r["meta"] = meta
    return r


def organization(cid: str = "clinic-01") -> dict:
    return {"resourceType": "Organization", "id": cid, "name": f"Clinic {cid}", "address": [{"state": "OR"}]}


def phq9(oid: str, pid: str, score: int, when: str = "2025-05-02T09:00:00Z", updated: str | None = None) -> dict:
    r = {"resourceType": "Observation", "id": oid, "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
         "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when, "valueInteger": score}
    if updated:
        r["meta"] = {"versionId": "1", "lastUpdated": updated}
    return r


def dose_row(dosing_id: str, mrn: str, clinic: str = "clinic-01", start: str = "2025-05-05T09:10:00Z",
             recorded: str = "2025-05-05T12:00:00Z") -> str:
    return (f"{dosing_id},{clinic},{mrn},IV,ketamine,40,0.5,80,{start},,,128,82,142,90,126,80,72,96,18,4,"
            f"false,cl-1,,{recorded},,")


def note_line(note_id: str, mrn: str, clinic: str = "clinic-01") -> dict:
    return {"note_id": note_id, "patient_mrn": mrn, "clinic_id": clinic, "therapist_id": "th-1",
            "session_type": "integration", "modality": "ACT", "session_start": "2025-05-05T15:00:00Z",
            "session_end": "2025-05-05T15:50:00Z", "attended": True, "signed_at": "2025-05-05T16:00:00Z",
            "text": "Felt calm."}


def write_ndjson(path: Path, resources: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def q(settings: Settings, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def reasons(settings: Settings) -> list[tuple]:
    return q(settings, """SELECT f.path, q.line_number, q.reason_code FROM raw.quarantine q
                          JOIN raw.ingest_files f USING (file_id) ORDER BY f.path, q.line_number""")


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    return Settings(home=(tmp_path / "home").resolve()).ensure_dirs()


# --- fault 1: one record moves "now" for the whole network -------------------------------------

def test_fault_1_a_knowledge_time_after_the_ingest_time_is_quarantined_not_logged(home, tmp_path):
    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "d1" / "Organization.000.ndjson", [organization()])
    write_ndjson(land / "ehr" / "d1" / "Patient.000.ndjson", [
        patient("p-1", "MRN-1"),
        patient("p-2", "MRN-2", updated="9999-12-31T00:00:00Z", version="7"),
    ])
    summary = step_ingest(land, home)
    assert summary.ok
    assert ("ehr/d1/Patient.000.ndjson", 2, "recorded_after_ingest") in reasons(home)
    assert q(home, "SELECT max(recorded_at) FROM raw.events")[0][0] < dt.datetime(2100, 1, 1)
    assert q(home, "SELECT count(*) FROM raw.events WHERE source_record_id = 'Patient/p-2'")[0][0] == 0


def test_knowledge_time_within_the_clock_skew_is_accepted(home, tmp_path):
    from ingest.knowledge import CLOCK_SKEW

    soon = (dt.datetime.now(dt.timezone.utc) + CLOCK_SKEW / 3).strftime("%Y-%m-%dT%H:%M:%SZ")
    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1", updated=soon)])
    step_ingest(land, home)
    assert reasons(home) == []
    assert q(home, "SELECT count(*) FROM raw.events")[0][0] == 1


def test_a_dosing_row_recorded_in_the_future_is_quarantined(home, tmp_path):
    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "Organization.000.ndjson", [organization()])
    write_ndjson(land / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    write_lines(land / "dosing" / "dosing.000.csv", [DOSING_HEADER, dose_row("d-1", "MRN-1"),
                                                     dose_row("d-2", "MRN-1", recorded="2999-01-01T00:00:00Z")])
    step_ingest(land, home)
    assert reasons(home) == [("dosing/dosing.000.csv", 3, "recorded_after_ingest")]


# --- fault 6: birth dates are not checked ----------------------------------------------------

@pytest.mark.parametrize("birth", ["0001-01-01", "1899-12-31", "9999-12-31"])
def test_fault_6_an_implausible_birth_date_is_quarantined(home, tmp_path, birth):
    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1"),
                                                       patient("p-2", "MRN-2", birth=birth)])
    step_ingest(land, home)
    assert reasons(home) == [("ehr/Patient.000.ndjson", 2, "out_of_range")]
    detail = q(home, "SELECT detail FROM raw.quarantine")[0][0]
    assert birth not in detail and detail.startswith("birthDate")


def test_a_birth_date_in_1900_or_today_is_plausible(home, tmp_path):
    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1", birth="1900-01-01"),
                                                       patient("p-2", "MRN-2", birth="2024-02-29")])
    step_ingest(land, home)
    assert reasons(home) == []


# --- fault 7: two versions of one resource without meta in one drop ----------------------------

def test_fault_7_without_meta_the_later_line_of_a_resource_wins_deterministically(home, tmp_path):
    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    # two versions of o-1, neither with meta: line 2 is the later one and must win, whatever
    # the content hashes are
    write_ndjson(land / "ehr" / "Observation.000.ndjson", [
        phq9("o-1", "p-1", 20), phq9("o-2", "p-1", 5), phq9("o-1", "p-1", 3)])
    summary = step_ingest(land, home)
    obs = next(f for f in summary.files if f.path.endswith("Observation.000.ndjson"))
    assert (obs.records_read, obs.records_accepted, obs.records_quarantined) == (3, 2, 1)
    assert reasons(home) == [("ehr/Observation.000.ndjson", 1, "superseded_in_file")]
    assert q(home, "SELECT CAST(payload->>'score' AS DOUBLE) FROM raw.events WHERE source_record_id = 'Observation/o-1'") == [(3.0,)]


def test_identical_lines_without_meta_stay_a_duplicate_in_file(home, tmp_path):
    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    write_ndjson(land / "ehr" / "Observation.000.ndjson", [phq9("o-1", "p-1", 20), phq9("o-1", "p-1", 20)])
    step_ingest(land, home)
    assert reasons(home) == [("ehr/Observation.000.ndjson", 2, "duplicate_in_file")]


def test_a_data_quality_warning_counts_versions_superseded_in_a_file(home, tmp_path):
    from kap.pipeline import step_validate

    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    write_ndjson(land / "ehr" / "Observation.000.ndjson", [
        phq9("o-1", "p-1", 20), phq9("o-2", "p-1", 5), phq9("o-2", "p-1", 6), phq9("o-1", "p-1", 3)])
    step_ingest(land, home, run_id="night-1")
    outcome = step_validate(home, "landing", "night-1")
    (warning,) = [r for r in outcome.results if r.check_id == "landing_superseded_in_file"]
    assert (warning.status, warning.severity, warning.rows_failed) == ("failed", "warning", 2)
    assert sorted(warning.failing_keys_sample) == ["ehr/Observation.000.ndjson:1", "ehr/Observation.000.ndjson:2"]
