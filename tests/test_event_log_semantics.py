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



@pytest.mark.parametrize("scores", [(20, 3), (3, 20)])
@pytest.mark.parametrize("with_manifest", [True, False])
def test_fault_7_without_meta_the_later_file_of_one_drop_wins_deterministically(home, tmp_path, scores,
                                                                                with_manifest):
    """One resource without meta in two files of one drop: the later file's version is current,
    whichever event id (a content hash) is larger, and a landing warning counts it."""
    from kap import transform
    from kap.pipeline import step_validate

    drop = tmp_path / "land" / "ehr" / "d1"
    write_ndjson(drop / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    write_ndjson(drop / "Observation.000.ndjson", [phq9("o-1", "p-1", scores[0]), phq9("o-2", "p-1", 5)])
    write_ndjson(drop / "Observation.001.ndjson", [phq9("o-1", "p-1", scores[1])])
    if with_manifest:
        manifest_for(drop, "2025-06-01T00:00:00Z")
    step_ingest(tmp_path / "land", home, run_id="night-1")
    assert reasons(home) == [] and q(home, "SELECT count(*) FROM raw.events") == [(4,)]
    transform.build(home, select="stg_raw__current_events")
    assert q(home, "SELECT CAST(payload->>'score' AS DOUBLE) FROM staging.stg_raw__current_events "
                   "WHERE source_record_id = 'Observation/o-1'") == [(float(scores[1]),)]
    outcome = step_validate(home, "landing", "night-1")
    (warning,) = [r for r in outcome.results if r.check_id == "landing_superseded_across_files"]
    assert (warning.status, warning.severity, warning.rows_failed) == ("failed", "warning", 1)
    assert warning.failing_keys_sample == [
        "ehr/d1/Observation.001.ndjson over ehr/d1/Observation.000.ndjson [Observation]"]


def test_the_files_of_one_run_are_ingested_in_order_and_never_after_the_runs_start(home, tmp_path):
    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    write_ndjson(land / "ehr" / "Observation.000.ndjson", [phq9("o-1", "p-1", 4)])
    write_ndjson(land / "ehr" / "Observation.001.ndjson", [phq9("o-2", "p-1", 5)])
    summary = step_ingest(land, home)
    started = dt.datetime.fromisoformat(summary.ingested_at.rstrip("Z"))
    stamps = q(home, "SELECT path, ingested_at FROM raw.ingest_files ORDER BY ingested_at")
    assert [p for p, _ in stamps] == ["ehr/Patient.000.ndjson", "ehr/Observation.000.ndjson",
                                      "ehr/Observation.001.ndjson"]
    assert len({t for _, t in stamps}) == 3 and stamps[-1][1] == started
    assert started - stamps[0][1] < dt.timedelta(milliseconds=1)
    # a meta-less record's knowledge time is its own file's ingest time (no manifest here)
    assert q(home, "SELECT count(*) FROM raw.events e JOIN raw.ingest_files f USING (file_id) "
                   "WHERE e.source_record_id LIKE 'Observation/%' "
                   "AND (e.recorded_at <> f.ingested_at OR e.ingested_at <> f.ingested_at)") == [(0,)]

# --- fault 3: "now" is not the export's time; the Bulk Data manifest ------------------------------

def manifest_for(drop: Path, transaction_time: str, counts: dict[str, int] | None = None,
                 errors: dict[str, int] | None = None) -> Path:
    """A Bulk Data manifest listing the drop's NDJSON files (with their true counts unless given)."""
    outputs = []
    for path in sorted(drop.glob("*.ndjson")):
        if path.name.startswith("OperationOutcome"):
            continue
        n = sum(1 for line in path.read_text().splitlines() if line.strip())
        outputs.append({"type": path.name.split(".")[0], "url": f"https://ehr.example/bulk/{path.name}",
                        "count": (counts or {}).get(path.name, n)})
    for name, n in (counts or {}).items():
        if not (drop / name).exists():
            outputs.append({"type": name.split(".")[0], "url": f"https://ehr.example/bulk/{name}", "count": n})
    body = {"transactionTime": transaction_time, "request": "https://ehr.example/fhir/$export",
            "requiresAccessToken": True, "output": outputs,
            "error": [{"type": "OperationOutcome", "url": f"https://ehr.example/bulk/{name}"}
                      for name in (errors or {})]}
    path = drop / "manifest.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def cutoffs(settings: Settings) -> list[tuple]:
    return q(settings, "SELECT cutoff_at, basis, manifest_path FROM raw.knowledge_cutoffs ORDER BY recorded_at")


def test_fault_3_now_is_the_manifest_transaction_time_of_the_latest_drop(home, tmp_path):
    land = tmp_path / "land"
    drop = land / "ehr" / "2025-06-01"
    write_ndjson(drop / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    write_ndjson(drop / "Observation.000.ndjson", [phq9("o-1", "p-1", 20, updated="2025-05-02T10:00:00Z")])
    manifest_for(drop, "2025-06-01T02:00:00+02:00")
    summary = step_ingest(land, home)
    # the latest record is from May; the export was taken on 2025-06-01 00:00 UTC
    assert cutoffs(home) == [(dt.datetime(2025, 6, 1), "manifest_transaction_time", "ehr/2025-06-01/manifest.json")]
    assert summary.knowledge_cutoff["cutoff_at"] == dt.datetime(2025, 6, 1)
    # the manifest is read as a manifest, never as a FHIR resource file, and not listed as ignored
    assert q(home, "SELECT count(*) FROM raw.ingest_files WHERE path LIKE '%manifest.json'") == [(0,)]
    assert summary.ignored_paths == []
    assert q(home, "SELECT transaction_time, outputs_listed FROM raw.export_manifests") == [(dt.datetime(2025, 6, 1), 2)]


def test_fault_3_a_resource_without_last_updated_takes_the_drops_transaction_time(home, tmp_path):
    land = tmp_path / "land"
    drop = land / "ehr" / "2025-06-01"
    write_ndjson(drop / "Patient.000.ndjson", [patient("p-1", "MRN-1", updated=None, version=None)])
    manifest_for(drop, "2025-06-01T00:00:00Z")
    step_ingest(land, home)
    assert q(home, "SELECT recorded_at FROM raw.events") == [(dt.datetime(2025, 6, 1),)]
    assert cutoffs(home)[-1][0] == dt.datetime(2025, 6, 1)


def test_without_a_manifest_a_resource_without_last_updated_takes_its_files_ingest_time(home, tmp_path):
    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1", updated=None, version=None)])
    step_ingest(land, home)
    (recorded, ingested), = q(home, "SELECT e.recorded_at, f.ingested_at FROM raw.events e JOIN raw.ingest_files f USING (file_id)")
    assert recorded == ingested
    assert cutoffs(home) == [(ingested, "latest_ingest_time", None)]


def test_the_knowledge_cutoff_is_never_later_than_the_runs_start(home, tmp_path):
    land = tmp_path / "land"
    drop = land / "ehr" / "d1"
    write_ndjson(drop / "Patient.000.ndjson", [patient("p-1", "MRN-1", updated=None, version=None)])
    manifest_for(drop, "2999-01-01T00:00:00Z")
    summary = step_ingest(land, home)
    (problem,), = q(home, "SELECT problem FROM raw.export_manifests")
    assert "after the ingest time" in problem
    (cutoff, basis, _), = cutoffs(home)
    started = dt.datetime.fromisoformat(summary.ingested_at.rstrip("Z"))
    assert cutoff <= started and basis == "latest_ingest_time"
    # the future transactionTime is not a knowledge time either
    assert q(home, "SELECT recorded_at FROM raw.events")[0][0] <= started


def test_a_night_with_nothing_new_keeps_the_cutoff(home, tmp_path):
    land = tmp_path / "land"
    drop = land / "ehr" / "d1"
    write_ndjson(drop / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    manifest_for(drop, "2025-06-01T00:00:00Z")
    step_ingest(land, home)
    step_ingest(land, home)
    assert [c[0] for c in cutoffs(home)] == [dt.datetime(2025, 6, 1)] * 2


def test_manifest_problems_are_recorded_and_reported_by_landing_checks(home, tmp_path):
    from kap.pipeline import step_validate

    land = tmp_path / "land"
    drop = land / "ehr" / "d1"
    write_ndjson(drop / "Patient.000.ndjson", [patient("p-1", "MRN-1"), patient("p-2", "MRN-2")])
    write_ndjson(drop / "Observation.000.ndjson", [phq9("o-1", "p-1", 20)])
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}
    write_ndjson(drop / "OperationOutcome.000.ndjson", [outcome, outcome, outcome])
    manifest_for(drop, "2025-06-01T00:00:00Z",
                 counts={"Patient.000.ndjson": 3, "Encounter.000.ndjson": 12},
                 errors={"OperationOutcome.000.ndjson": 3})
    summary = step_ingest(land, home, run_id="night-1")
    (m,) = summary.manifests
    assert m["outputs_missing"] == ["ehr/d1/Encounter.000.ndjson"]
    assert m["outputs_count_mismatch"] == ["ehr/d1/Patient.000.ndjson: listed 3, found 2"]
    assert (m["errors_listed"], m["error_records"]) == (1, 3)
    # the OperationOutcome lines are counted as ignored records of a foreign type, not as data
    oo = next(f for f in summary.files if f.path.endswith("OperationOutcome.000.ndjson"))
    assert (oo.records_read, oo.records_ignored) == (3, 3)

    results = {r.check_id: r for r in step_validate(home, "landing", "night-1").results}
    assert results["landing_manifest_files_present"].failing_keys_sample == ["ehr/d1/Encounter.000.ndjson [missing]"]
    assert results["landing_manifest_counts_match"].failing_keys_sample == [
        "ehr/d1/Patient.000.ndjson [count_mismatch: listed 3, found 2]"]
    assert results["landing_manifest_export_errors"].failing_keys_sample == [
        "ehr/d1/OperationOutcome.000.ndjson [errors_reported: 3 OperationOutcome records]"]
    assert all(results[c].severity == "warning" for c in ("landing_manifest_files_present",
                                                           "landing_manifest_counts_match",
                                                           "landing_manifest_export_errors"))



@pytest.mark.parametrize("body, problem", [
    (b"[" * 5000 + b"]" * 5000, "not valid JSON: RecursionError"),
    (b"{not json", "not valid JSON: JSONDecodeError"),
    (b'["an array"]', "not a JSON object"),
    (b'{"transactionTime": "1970-01-01T00:00:00Z"}', "transactionTime 1970-01-01T00:00:00Z is before 2000-01-01T00:00:00Z"),
    (b'{"transactionTime": "2025-06-01T00:00:00Z", "output": [{"type": "Patient", "count": 1e400}]}',
     None),
    (b'{"transactionTime": "2025-06-01T00:00:00Z", "output": [{"url": "x/Patient.000.ndjson", "count": 100000000000000000000000}]}',
     None),
])
def test_a_hostile_manifest_is_recorded_with_its_problem_and_the_drop_goes_on(home, tmp_path, body, problem):
    drop = tmp_path / "land" / "ehr" / "d1"
    write_ndjson(drop / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    (drop / "manifest.json").write_bytes(body)
    summary = step_ingest(tmp_path / "land", home)
    assert summary.files[0].status == "ingested" and summary.files[0].records_accepted == 1
    (recorded,) = q(home, "SELECT problem FROM raw.export_manifests")
    assert (recorded[0] or "").startswith(problem or "") and (problem is None) == (recorded[0] is None)
    # a count that is no count is not recorded as one
    assert q(home, "SELECT count(*) FROM raw.export_manifest_files WHERE listed_count > 1") == [(0,)]


def test_a_manifest_never_decompresses_a_listed_file_past_the_ingest_limit(home, tmp_path):
    import gzip

    drop = tmp_path / "land" / "ehr" / "d1"
    write_ndjson(drop / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    bomb = drop / "Observation.000.ndjson.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:          # 64 MiB of blanks in ~64 kB
        for _ in range(64):
            f.write(b" " * (1 << 20))
    body = {"transactionTime": "2025-06-01T00:00:00Z",
            "output": [{"type": "Observation", "url": "https://ehr.example/Observation.000.ndjson.gz", "count": 5}]}
    (drop / "manifest.json").write_text(json.dumps(body))
    summary = step_ingest(tmp_path / "land", home)
    assert q(home, "SELECT status, found_lines FROM raw.export_manifest_files") == [("unreadable", None)]
    assert {f.path: f.status for f in summary.files}["ehr/d1/Observation.000.ndjson.gz"] == "rejected"


def test_a_symlinked_manifest_is_not_followed(home, tmp_path):
    drop = tmp_path / "land" / "ehr" / "d1"
    write_ndjson(drop / "Patient.000.ndjson", [patient("p-1", "MRN-1", updated=None, version=None)])
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps({"transactionTime": "2025-06-01T00:00:00Z"}))
    (drop / "manifest.json").symlink_to(outside)
    step_ingest(tmp_path / "land", home)
    assert q(home, "SELECT problem FROM raw.export_manifests") == [("a symbolic link: not followed",)]
    assert cutoffs(home)[0][1] == "latest_ingest_time"


def test_a_backfilled_older_drop_never_moves_now_back(home, tmp_path):
    new, old = tmp_path / "n1" / "ehr" / "d2", tmp_path / "n2" / "ehr" / "d1"
    write_ndjson(new / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    manifest_for(new, "2025-06-01T00:00:00Z")
    step_ingest(new.parent.parent, home)
    write_ndjson(old / "Patient.000.ndjson", [patient("p-2", "MRN-2")])
    manifest_for(old, "2025-03-01T00:00:00Z")
    step_ingest(old.parent.parent, home)
    assert [(c, b) for c, b, _ in cutoffs(home)] == [(dt.datetime(2025, 6, 1), "manifest_transaction_time"),
                                                     (dt.datetime(2025, 6, 1), "previous_cutoff")]

def test_generate_writes_a_manifest_whose_transaction_time_ends_the_period(tmp_path):
    from kap.generator import generate

    generate(tmp_path / "g", patients=3, days=10, seed=1, start=dt.date(2025, 3, 3))
    body = json.loads((tmp_path / "g" / "ehr" / "manifest.json").read_text())
    assert body["transactionTime"] == "2025-03-13T00:00:00Z"
    listed = {Path(o["url"]).name: o["count"] for o in body["output"]}
    files = {p.name: sum(1 for line in p.read_text().splitlines() if line.strip())
             for p in (tmp_path / "g" / "ehr").glob("*.ndjson")}
    assert listed == files and body["error"] == []


def _now_of_build(settings: Settings, as_of: str | None = None) -> tuple:
    from kap import transform

    transform.build(settings, as_of=as_of, select="stg_raw__knowledge_time")
    return q(settings, "SELECT as_of_at, now_basis FROM staging.stg_raw__knowledge_time")[0]


def test_fault_3_the_builds_now_is_the_knowledge_cutoff_and_as_of_overrides_it(home, tmp_path):
    land = tmp_path / "land"
    drop = land / "ehr" / "2025-06-01"
    write_ndjson(drop / "Patient.000.ndjson", [patient("p-1", "MRN-1"),
                                                 patient("p-2", "MRN-2", updated="9999-12-31T00:00:00Z")])
    write_ndjson(drop / "Observation.000.ndjson", [phq9("o-1", "p-1", 20)])      # no meta
    manifest_for(drop, "2025-06-01T00:00:00Z")
    step_ingest(land, home)
    # neither the 9999 record (quarantined) nor the meta-less one (the export's time) moves "now"
    assert _now_of_build(home) == (dt.datetime(2025, 6, 1), "manifest_transaction_time")
    assert _now_of_build(home, "2025-05-15T00:00:00") == (dt.datetime(2025, 5, 15), "as_of")


# --- fault 5: late-arriving records are lost; unknown clinics are accepted -------------------------

def parked(settings: Settings) -> list[tuple]:
    return q(settings, """SELECT f.path, p.line_number, p.reason_code, p.status, p.released_by_run
                          FROM restricted.parked_records p JOIN raw.ingest_files f USING (file_id)
                          ORDER BY f.path, p.line_number""")


def test_fault_5_a_dose_and_a_note_whose_patient_arrives_later_are_released(home, tmp_path):
    night1, night2 = tmp_path / "n1", tmp_path / "n2"
    write_ndjson(night1 / "ehr" / "Organization.000.ndjson", [organization()])
    write_ndjson(night1 / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    write_lines(night1 / "dosing" / "dosing.000.csv", [DOSING_HEADER, dose_row("d-1", "MRN-1"),
                                                       dose_row("d-2", "MRN-2", recorded="2025-05-05T13:00:00Z")])
    write_lines(night1 / "notes" / "notes.000.jsonl", [json.dumps(note_line("n-2", "MRN-2"))])
    write_ndjson(night1 / "ehr" / "Observation.000.ndjson", [phq9("o-2", "p-2", 17, updated="2025-05-02T10:00:00Z")])
    first = step_ingest(night1, home, run_id="night-1")
    assert [(p, n, r, s) for p, n, r, s, _ in parked(home)] == [
        ("dosing/dosing.000.csv", 3, "unknown_patient", "parked"),
        ("ehr/Observation.000.ndjson", 1, "unknown_patient", "parked"),
        ("notes/notes.000.jsonl", 1, "unknown_patient", "parked")]
    assert first.parked == {"released": 0, "superseded": 0, "rejected": 0, "still_parked": {"unknown_patient": 3}}
    dosing = next(f for f in first.files if f.path == "dosing/dosing.000.csv")
    assert (dosing.records_read, dosing.records_accepted, dosing.records_quarantined) == (2, 1, 1)

    # night 2: the patient arrives; the three parked records come back with their own knowledge time
    write_ndjson(night2 / "ehr" / "Patient.000.ndjson", [patient("p-2", "MRN-2")])
    second = step_ingest(night2, home, run_id="night-2")
    assert second.parked == {"released": 3, "superseded": 0, "rejected": 0, "still_parked": {}}
    assert [(p, n, s, by) for p, n, _, s, by in parked(home)] == [
        ("dosing/dosing.000.csv", 3, "released", "night-2"),
        ("ehr/Observation.000.ndjson", 1, "released", "night-2"),
        ("notes/notes.000.jsonl", 1, "released", "night-2")]
    rows = q(home, """SELECT e.source_record_id, e.recorded_at, f.path, e.ingested_at > f.ingested_at,
                             e.patient_key = (SELECT patient_key FROM restricted.patient_keys WHERE id_value = 'MRN-2')
                      FROM raw.events e JOIN raw.ingest_files f USING (file_id)
                      WHERE e.source_record_id IN ('d-2', 'n-2', 'Observation/o-2') ORDER BY 1""")
    assert rows == [("Observation/o-2", dt.datetime(2025, 5, 2, 10), "ehr/Observation.000.ndjson", True, True),
                    ("d-2", dt.datetime(2025, 5, 5, 13), "dosing/dosing.000.csv", True, True),
                    ("n-2", dt.datetime(2025, 5, 5, 16), "notes/notes.000.jsonl", True, True)]
    # counted on the releasing run: the original files' rows are unchanged
    assert q(home, "SELECT records_accepted, records_quarantined, events_added FROM raw.ingest_files "
                   "WHERE path = 'dosing/dosing.000.csv'") == [(1, 1, 1)]
    # a third night releases nothing twice
    assert step_ingest(night2, home, run_id="night-3").parked["released"] == 0
    assert q(home, "SELECT count(*), count(DISTINCT event_id) FROM raw.events") == [(7, 7)]


def test_fault_5_an_unknown_clinic_is_parked_until_the_clinic_arrives(home, tmp_path):
    night1, night2 = tmp_path / "n1", tmp_path / "n2"
    write_ndjson(night1 / "ehr" / "Organization.000.ndjson", [organization()])
    write_ndjson(night1 / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    write_lines(night1 / "dosing" / "dosing.000.csv", [DOSING_HEADER, dose_row("d-1", "MRN-1"),
                                                       dose_row("d-2", "MRN-1", clinic="clinic-zz")])
    write_lines(night1 / "notes" / "notes.000.jsonl", [json.dumps(note_line("n-1", "MRN-1", clinic="clinic-zz"))])
    step_ingest(night1, home)
    assert [(p, r) for p, _, r, _, _ in parked(home)] == [("dosing/dosing.000.csv", "unknown_clinic"),
                                                          ("notes/notes.000.jsonl", "unknown_clinic")]
    # no phantom clinic: nothing of clinic-zz is in the log
    assert q(home, "SELECT count(*) FROM raw.events WHERE payload->>'clinic_id' = 'clinic-zz'") == [(0,)]
    write_ndjson(night2 / "ehr" / "Organization.000.ndjson", [organization("clinic-zz")])
    assert step_ingest(night2, home).parked["released"] == 2
    assert q(home, "SELECT count(*) FROM raw.events WHERE payload->>'clinic_id' = 'clinic-zz'") == [(3,)]


def test_a_parked_record_resent_after_its_patient_arrived_is_superseded_not_doubled(home, tmp_path):
    night1, night2 = tmp_path / "n1", tmp_path / "n2"
    write_ndjson(night1 / "ehr" / "Organization.000.ndjson", [organization()])
    rows = [DOSING_HEADER, dose_row("d-2", "MRN-2")]
    write_lines(night1 / "dosing" / "dosing.000.csv", rows)
    step_ingest(night1, home)
    write_ndjson(night2 / "ehr" / "Patient.000.ndjson", [patient("p-2", "MRN-2")])
    write_lines(night2 / "dosing" / "dosing.resent.csv", rows + [dose_row("d-3", "MRN-2")])
    summary = step_ingest(night2, home)
    assert summary.parked == {"released": 0, "superseded": 1, "rejected": 0, "still_parked": {}}
    assert q(home, "SELECT count(*) FROM raw.events WHERE source_record_id = 'd-2'") == [(1,)]


def test_a_parked_record_counts_once_as_quarantined_by_its_file(home, tmp_path):
    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "Organization.000.ndjson", [organization()])
    write_lines(land / "dosing" / "dosing.000.csv", [DOSING_HEADER, dose_row("d-2", "MRN-2")])
    (f,) = [f for f in step_ingest(land, home).files if f.source == "dosing"]
    assert (f.records_read, f.records_quarantined) == (1, 1)
    assert q(home, "SELECT reason_code FROM raw.quarantine WHERE file_id = ?", [f.file_id]) == [("unknown_patient",)]
    # the parked copy holds the MRN it waits for: restricted schema only
    assert q(home, "SELECT ref_value FROM restricted.parked_records") == [("MRN-2",)]


# --- fault 2: the gate only looks at tonight's files ------------------------------------------------

def test_fault_2_a_critical_condition_in_the_log_keeps_blocking_until_it_is_retracted(home, tmp_path):
    from kap.pipeline import step_validate
    from kap.quality import CriticalCheckFailed
    from kap.warehouse import writer

    night1 = tmp_path / "n1"
    write_ndjson(night1 / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    write_ndjson(night1 / "ehr" / "Observation.000.ndjson", [phq9("o-1", "p-1", 20, updated="2025-05-02T10:00:00Z")])
    step_ingest(night1, home, run_id="night-1")
    # a log written before tonight's rules: one current record dated 2099 (as an older ingest let in)
    with writer(home) as con:
        con.execute("UPDATE raw.events SET occurred_at = TIMESTAMP '2099-05-02 09:00:00' "
                    "WHERE source_record_id = 'Observation/o-1'")

    # night 2 brings nothing new, and is still blocked - naming the record and how to retract it
    step_ingest(night1, home, run_id="night-2")
    with pytest.raises(CriticalCheckFailed) as failure:
        step_validate(home, "landing", "night-2")
    message = str(failure.value)
    assert "landing_log_not_future" in message and "ehr Observation/o-1" in message
    assert "entered-in-error" in message and "ehr/Observation.000.ndjson" in message
    run_scoped = {r.check_id: r.status for r in failure.value.outcome.results}
    assert run_scoped["landing_events_not_future"] == "passed"     # tonight's files are fine

    # night 3: the EHR retracts the record; the log's current state is clean again
    night3 = tmp_path / "n3"
    retracted = phq9("o-1", "p-1", 20, updated="2025-05-03T10:00:00Z")
    retracted["status"], retracted["meta"]["versionId"] = "entered-in-error", "2"
    write_ndjson(night3 / "ehr" / "Observation.000.ndjson", [retracted])
    step_ingest(night3, home, run_id="night-3")
    outcome = step_validate(home, "landing", "night-3")
    assert {r.check_id: r.status for r in outcome.results}["landing_log_not_future"] == "passed"


def _log_results(outcome) -> dict[str, tuple]:
    return {r.check_id: (r.status, r.rows_checked, r.rows_failed, r.failing_keys_sample, r.detail)
            for r in outcome.results if r.target == "landing.log_current_events"}


def test_a_night_reads_the_logs_current_state_in_part_and_finds_what_the_whole_log_holds(home, tmp_path):
    """The landing_log_* checks on a night read the records the run sent and every record with a
    failing version (docs/inputs.md); the full checks read every record. Both find the same failures."""
    from kap.pipeline import step_validate
    from kap.quality import CriticalCheckFailed
    from kap.quality.runner import NIGHT_DETAIL
    from kap.warehouse import writer

    night1 = tmp_path / "n1"
    write_ndjson(night1 / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1"), patient("p-2", "MRN-2")])
    write_ndjson(night1 / "ehr" / "Observation.000.ndjson",
                 [phq9(f"o-{i}", "p-1" if i % 2 else "p-2", 10 + i, updated="2025-05-02T10:00:00Z") for i in range(1, 9)])
    step_ingest(night1, home, run_id="night-1")
    # the first load is the whole log: read whole
    first = _log_results(step_validate(home, "landing", "night-1"))
    assert {v[:3] for v in first.values()} == {("passed", 10, 0)}     # 2 patients + 8 observations
    assert {v[4] for v in first.values()} == {""}

    # Two bad versions entered the log before tonight's rules (as an older ingest let in): o-1's
    # current version is dated 2099, and so is the version of o-2 that tonight's new version replaces.
    with writer(home) as con:
        con.execute("UPDATE raw.events SET occurred_at = TIMESTAMP '2099-05-02 09:00:00' "
                    "WHERE source_record_id IN ('Observation/o-1', 'Observation/o-2')")
    night2 = tmp_path / "n2"
    o2 = phq9("o-2", "p-2", 14, updated="2025-05-03T10:00:00Z")
    o2["meta"]["versionId"] = "2"
    write_ndjson(night2 / "ehr" / "Observation.000.ndjson", [o2, phq9("o-9", "p-1", 9, updated="2025-05-03T10:00:00Z")])
    step_ingest(night2, home, run_id="night-2")

    with pytest.raises(CriticalCheckFailed) as failure:
        step_validate(home, "landing", "night-2")
    night = _log_results(failure.value.outcome)
    # read tonight: o-2 and o-9 (sent), o-1 and o-2 (a failing version): 3 current records
    assert night["landing_log_not_future"][:3] == ("failed", 3, 1)
    [sample] = night["landing_log_not_future"][3]
    assert sample.startswith("ehr Observation/o-1 (event ") and sample.endswith(", file ehr/Observation.000.ndjson)")
    assert "Observation/o-2" not in str(night["landing_log_not_future"][3])   # its current version is fine
    for check_id in ("landing_log_recorded_not_after_ingest", "landing_log_patient_known"):
        assert night[check_id] == ("passed", 3, 0, [], NIGHT_DETAIL), check_id

    with pytest.raises(CriticalCheckFailed) as failure:
        step_validate(home, "landing", "night-2", full_checks=True)
    full = _log_results(failure.value.outcome)
    # every record, the same failure
    assert full["landing_log_not_future"][:4] == ("failed", 11, 1, night["landing_log_not_future"][3])
    for check_id in ("landing_log_recorded_not_after_ingest", "landing_log_patient_known"):
        assert full[check_id] == ("passed", 11, 0, [], ""), check_id
    # and every other landing check gives the same answer either way, but the lake check: the
    # UPDATE above changed rows in place after its last pass compared them (same counts), which
    # only the full checks' checksums of every row find (README, "Nightly and full checks")
    lake_check = "landing_lake_matches_log"
    other = {r.check_id: (r.status, r.rows_checked, r.rows_failed) for r in failure.value.outcome.results
             if r.target != "landing.log_current_events"}
    assert other[lake_check] == ("failed", 4, 1)
    with pytest.raises(CriticalCheckFailed) as failure:
        step_validate(home, "landing", "night-2")
    again = {r.check_id: (r.status, r.rows_checked, r.rows_failed, r.detail) for r in failure.value.outcome.results
             if r.target != "landing.log_current_events"}
    lake_night = again.pop(lake_check)
    assert lake_night[:3] == ("passed", 4, 0) and lake_night[3].startswith("read for the night"), lake_night
    assert {k: v[:3] for k, v in again.items()} == {k: v for k, v in other.items() if k != lake_check}


def test_a_log_check_the_night_cannot_narrow_reads_the_whole_log(home, tmp_path):
    """A condition that names a column the event log does not have (file_path is the view's) cannot
    pick the failing versions: that view is read whole, and the check still runs."""
    from dataclasses import replace

    from kap.pipeline import step_validate
    from kap.quality import validate
    from kap.quality.catalogue import load_catalogue

    night1 = tmp_path / "n1"
    write_ndjson(night1 / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1"), patient("p-2", "MRN-2")])
    write_ndjson(night1 / "ehr" / "Observation.000.ndjson",
                 [phq9(f"o-{i}", "p-1", 10 + i, updated="2025-05-02T10:00:00Z") for i in range(1, 6)])
    step_ingest(night1, home, run_id="night-1")
    night2 = tmp_path / "n2"
    write_ndjson(night2 / "ehr" / "Observation.000.ndjson", [phq9("o-9", "p-1", 9, updated="2025-05-03T10:00:00Z")])
    step_ingest(night2, home, run_id="night-2")
    landing = load_catalogue(stage="landing")
    log_check = next(c for c in landing if c.check_id == "landing_log_patient_known")
    by_file = replace(log_check, check_id="landing_log_file_known", params="file_path IS NOT NULL")
    outcome = validate(home, "landing", "night-2", checks=landing + [by_file])
    results = _log_results(outcome)
    assert {v[:3] for v in results.values()} == {("passed", 8, 0)}    # 2 patients + 6 observations
    assert {v[4] for v in results.values()} == {""}

    # without that check, the same night reads its part: o-9 alone
    results = _log_results(step_validate(home, "landing", "night-2"))
    assert {v[:3] for v in results.values()} == {("passed", 1, 0)}


def test_parked_records_show_in_the_landing_checks_until_released(home, tmp_path):
    from kap.pipeline import step_validate

    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "Organization.000.ndjson", [organization()])
    write_lines(land / "dosing" / "dosing.000.csv", [DOSING_HEADER, dose_row("d-2", "MRN-2")])
    step_ingest(land, home, run_id="night-1")
    results = {r.check_id: r for r in step_validate(home, "landing", "night-1").results}
    assert results["landing_parked_too_long"].status == "passed"          # parked today
    assert results["landing_parked_too_long"].rows_checked == 1
    assert results["landing_parked_identity_conflicts"].status == "passed"


def test_the_parked_age_in_the_catalogue_is_the_documented_one():
    from ingest.parking import PARKED_WARNING_DAYS
    from kap.quality.catalogue import load_catalogue

    (check,) = [c for c in load_catalogue() if c.check_id == "landing_parked_too_long"]
    assert f"age_days <= {PARKED_WARNING_DAYS}" in check.params


# --- fault 4: two people merged silently -----------------------------------------------------------

def keys(settings: Settings) -> dict[tuple[str, str], str]:
    return {(s, v): k for k, s, v in q(settings, "SELECT patient_key, id_system, id_value FROM restricted.patient_keys")}


def test_fault_4_one_mrn_on_two_patient_ids_never_merges_two_people(home, tmp_path):
    night1, night2 = tmp_path / "n1", tmp_path / "n2"
    write_ndjson(night1 / "ehr" / "Patient.000.ndjson", [patient("p-a", "MRN-1", birth="1950-01-01")])
    step_ingest(night1, home)
    # another person's chart arrives with person A's MRN, no Patient.link: B must not become A
    write_ndjson(night2 / "ehr" / "Patient.000.ndjson", [patient("p-b", "MRN-1", birth="1999-09-09")])
    write_ndjson(night2 / "ehr" / "Observation.000.ndjson", [phq9("o-b", "p-b", 9, updated="2025-05-02T10:00:00Z")])
    summary = step_ingest(night2, home)
    assert [(p, r) for p, _, r, _, _ in parked(home)] == [("ehr/Observation.000.ndjson", "unknown_patient"),
                                                          ("ehr/Patient.000.ndjson", "identity_conflict")]
    k = keys(home)
    assert ("fhir", "p-b") not in k and k[("mrn", "MRN-1")] == k[("fhir", "p-a")]
    # A's demographics are A's: one patient event, born 1950
    assert q(home, "SELECT patient_key, payload->>'birth_year' FROM raw.events "
                   "WHERE event_type IN ('patient_registered', 'patient_updated')") == [(k[("fhir", "p-a")], "1950")]
    assert summary.parked["still_parked"] == {"identity_conflict": 1, "unknown_patient": 1}


def test_fault_4_a_patient_id_whose_mrn_changes_is_not_merged_with_the_new_mrn(home, tmp_path):
    night1, night2 = tmp_path / "n1", tmp_path / "n2"
    write_ndjson(night1 / "ehr" / "Patient.000.ndjson", [patient("p-a", "MRN-1")])
    step_ingest(night1, home)
    write_ndjson(night2 / "ehr" / "Patient.000.ndjson", [patient("p-a", "MRN-2", version="2",
                                                                 updated="2025-05-09T08:00:00Z")])
    step_ingest(night2, home)
    assert [(p, r) for p, _, r, _, _ in parked(home)] == [("ehr/Patient.000.ndjson", "identity_conflict")]
    assert ("mrn", "MRN-2") not in keys(home)
    assert q(home, "SELECT count(*) FROM raw.events") == [(1,)]


def test_one_mrn_on_two_new_patient_ids_in_one_file_keys_only_the_first(home, tmp_path):
    land = tmp_path / "land"
    write_ndjson(land / "ehr" / "Patient.000.ndjson", [patient("p-a", "MRN-1"), patient("p-b", "MRN-1")])
    step_ingest(land, home)
    assert reasons(home) == [("ehr/Patient.000.ndjson", 2, "identity_conflict")]
    assert set(keys(home)) == {("fhir", "p-a"), ("mrn", "MRN-1")}


def test_a_new_version_of_a_known_patient_is_not_a_conflict(home, tmp_path):
    night1, night2 = tmp_path / "n1", tmp_path / "n2"
    write_ndjson(night1 / "ehr" / "Patient.000.ndjson", [patient("p-a", "MRN-1")])
    step_ingest(night1, home)
    write_ndjson(night2 / "ehr" / "Patient.000.ndjson", [patient("p-a", "MRN-1", version="2",
                                                                 updated="2025-05-09T08:00:00Z", gender="male")])
    step_ingest(night2, home)
    assert reasons(home) == [] and q(home, "SELECT count(*) FROM raw.events") == [(2,)]


def test_a_documented_merge_joins_two_charts_from_the_time_the_link_was_recorded(home, tmp_path):
    from kap import transform

    night1, night2 = tmp_path / "n1", tmp_path / "n2"
    write_ndjson(night1 / "ehr" / "Patient.000.ndjson", [patient("p-old", "MRN-1")])
    write_ndjson(night1 / "ehr" / "Observation.000.ndjson", [phq9("o-old", "p-old", 20, updated="2025-05-02T10:00:00Z")])
    step_ingest(night1, home)
    # the EHR merges the charts on 2025-06-01: the new chart replaces the old one, which points to it
    link_at = "2025-06-01T08:00:00Z"
    write_ndjson(night2 / "ehr" / "Patient.000.ndjson", [
        patient("p-new", "MRN-1", updated=link_at,
                link=[{"other": {"reference": "Patient/p-old"}, "type": "replaces"}]),
        patient("p-old", "MRN-1", version="2", updated=link_at, active=False,
                link=[{"other": {"reference": "Patient/p-new"}, "type": "replaced-by"}])])
    write_ndjson(night2 / "ehr" / "Observation.000.ndjson", [phq9("o-new", "p-new", 12, when="2025-06-02T09:00:00Z",
                                                                  updated="2025-06-02T10:00:00Z")])
    step_ingest(night2, home)
    assert parked(home) == [] and reasons(home) == []
    k = keys(home)
    assert k[("fhir", "p-new")] != k[("fhir", "p-old")] == k[("mrn", "MRN-1")]   # the log is not rewritten

    select = "stg_raw__current_events stg_raw__knowledge_time stg_ehr__patient_merges stg_ehr__patients stg_ehr__assessments"
    transform.build(home, select=select)
    assert q(home, "SELECT count(*) FROM staging.stg_ehr__patients") == [(1,)]
    assert q(home, "SELECT count(DISTINCT patient_key), min(patient_key) FROM staging.stg_ehr__assessments") == [
        (1, k[("fhir", "p-new")])]
    # as of before the link was recorded, the two charts are apart
    transform.build(home, select=select, as_of="2025-05-20T00:00:00")
    assert q(home, "SELECT count(*) FROM staging.stg_ehr__patient_merges") == [(0,)]
    assert q(home, "SELECT patient_key FROM staging.stg_ehr__assessments") == [(k[("fhir", "p-old")],)]


def test_a_merge_chain_keeps_every_chart_under_the_last_survivor(home, tmp_path):
    """A is retired into B, later B into C (each with both Patient.link sides): C carries the MRN
    without an identity conflict, and all three charts' records count under C's key."""
    from kap import transform

    nights = [tmp_path / f"n{i}" for i in range(3)]
    write_ndjson(nights[0] / "ehr" / "Patient.000.ndjson", [patient("p-a", "MRN-1")])
    write_ndjson(nights[0] / "ehr" / "Observation.000.ndjson", [phq9("o-a", "p-a", 20, updated="2025-05-02T10:00:00Z")])
    for night, (old, new, at) in zip(nights[1:], [("p-a", "p-b", "2025-06-01T08:00:00Z"),
                                                 ("p-b", "p-c", "2025-07-01T08:00:00Z")]):
        write_ndjson(night / "ehr" / "Patient.000.ndjson", [
            patient(new, "MRN-1", updated=at, link=[{"other": {"reference": f"Patient/{old}"}, "type": "replaces"}]),
            patient(old, "MRN-1", version="2", updated=at, active=False,
                    link=[{"other": {"reference": f"Patient/{new}"}, "type": "replaced-by"}])])
        write_ndjson(night / "ehr" / "Observation.000.ndjson",
                     [phq9(f"o-{new}", new, 12, when=at.replace("08:00", "09:00"), updated=at.replace("08:00", "10:00"))])
    for night in nights:
        step_ingest(night, home)
    assert parked(home) == [] and reasons(home) == []
    k = keys(home)
    assert len({k[("fhir", "p-a")], k[("fhir", "p-b")], k[("fhir", "p-c")]}) == 3

    select = "stg_raw__current_events stg_raw__knowledge_time stg_ehr__patient_merges stg_ehr__patients stg_ehr__assessments"
    transform.build(home, select=select)
    assert q(home, "SELECT DISTINCT patient_key FROM staging.stg_ehr__assessments") == [(k[("fhir", "p-c")],)]
    assert q(home, "SELECT count(*) FROM staging.stg_ehr__patients") == [(1,)]
    # as of between the two merges: A and B are one patient (B), C is not known yet
    transform.build(home, select=select, as_of="2025-06-15T00:00:00")
    assert q(home, "SELECT DISTINCT patient_key FROM staging.stg_ehr__assessments") == [(k[("fhir", "p-b")],)]


def test_an_identity_conflict_is_released_when_a_later_link_explains_it(home, tmp_path):
    """p-b arrives with p-a's MRN and no link: parked, with its observation. A night later the EHR
    sends p-a retired into p-b (Patient.link replaced-by on the retired chart only): p-b is keyed
    on its own and released, its observation follows, and both charts count under p-b."""
    from kap import transform

    night1, night2, night3 = tmp_path / "n1", tmp_path / "n2", tmp_path / "n3"
    write_ndjson(night1 / "ehr" / "Patient.000.ndjson", [patient("p-a", "MRN-1")])
    step_ingest(night1, home)
    write_ndjson(night2 / "ehr" / "Patient.000.ndjson", [patient("p-b", "MRN-1", updated="2025-05-10T08:00:00Z")])
    write_ndjson(night2 / "ehr" / "Observation.000.ndjson", [phq9("o-b", "p-b", 9, updated="2025-05-10T10:00:00Z")])
    step_ingest(night2, home)
    assert [(p, r, s) for p, _, r, s, _ in parked(home)] == [("ehr/Observation.000.ndjson", "unknown_patient", "parked"),
                                                             ("ehr/Patient.000.ndjson", "identity_conflict", "parked")]
    write_ndjson(night3 / "ehr" / "Patient.000.ndjson", [
        patient("p-a", "MRN-1", version="2", updated="2025-05-20T08:00:00Z", active=False,
                link=[{"other": {"reference": "Patient/p-b"}, "type": "replaced-by"}])])
    summary = step_ingest(night3, home, run_id="night-3")
    assert summary.parked == {"released": 2, "superseded": 0, "rejected": 0, "still_parked": {}}
    assert [(p, s, by) for p, _, _, s, by in parked(home)] == [("ehr/Observation.000.ndjson", "released", "night-3"),
                                                               ("ehr/Patient.000.ndjson", "released", "night-3")]
    k = keys(home)
    assert k[("fhir", "p-b")] != k[("fhir", "p-a")] == k[("mrn", "MRN-1")]
    transform.build(home, select="stg_raw__current_events stg_raw__knowledge_time stg_ehr__patient_merges stg_ehr__patients")
    assert q(home, "SELECT patient_key, birth_year FROM staging.stg_ehr__patients") == [(k[("fhir", "p-b")], 1980)]


def test_an_identity_conflict_corrected_by_a_later_version_is_closed_not_released(home, tmp_path):
    night1, night2, night3 = tmp_path / "n1", tmp_path / "n2", tmp_path / "n3"
    write_ndjson(night1 / "ehr" / "Patient.000.ndjson", [patient("p-a", "MRN-1")])
    step_ingest(night1, home)
    write_ndjson(night2 / "ehr" / "Patient.000.ndjson", [patient("p-b", "MRN-1", updated="2025-05-10T08:00:00Z")])
    step_ingest(night2, home)
    # the EHR fixes p-b's MRN: the new version is keyed; the conflicting one is closed, never logged
    write_ndjson(night3 / "ehr" / "Patient.000.ndjson", [patient("p-b", "MRN-7", version="2",
                                                                 updated="2025-05-11T08:00:00Z")])
    summary = step_ingest(night3, home)
    assert summary.parked["superseded"] == 1 and summary.parked["still_parked"] == {}
    assert [s for _, _, _, s, _ in parked(home)] == ["superseded"]
    k = keys(home)
    assert k[("fhir", "p-b")] == k[("mrn", "MRN-7")] != k[("mrn", "MRN-1")]
    assert q(home, "SELECT count(*) FROM raw.events WHERE source_record_id = 'Patient/p-b'") == [(1,)]


def test_a_released_record_before_its_patients_birth_is_rejected_not_logged(home, tmp_path):
    """A dose that arrives before its patient is parked; the patient then turns out to be born after
    the dose's year: the same before_birth rule ingest applies, applied on release."""
    from kap.pipeline import step_validate

    night1, night2 = tmp_path / "n1", tmp_path / "n2"
    write_ndjson(night1 / "ehr" / "Organization.000.ndjson", [organization()])
    write_lines(night1 / "dosing" / "dosing.000.csv", [DOSING_HEADER,
                                                       dose_row("d-1", "MRN-2", start="2019-05-05T09:10:00Z"),
                                                       dose_row("d-2", "MRN-2")])
    step_ingest(night1, home)
    write_ndjson(night2 / "ehr" / "Patient.000.ndjson", [patient("p-2", "MRN-2", birth="2020-02-02")])
    summary = step_ingest(night2, home, run_id="night-2")
    assert summary.parked == {"released": 1, "superseded": 0, "rejected": 1, "still_parked": {}}
    assert q(home, """SELECT line_number, status, closed_detail FROM restricted.parked_records
                      ORDER BY line_number""") == [
        (2, "rejected", "before_birth: occurred in 2019, before birth year 2020"), (3, "released", None)]
    assert q(home, "SELECT source_record_id FROM raw.events WHERE source = 'dosing'") == [("d-2",)]
    outcome = step_validate(home, "landing", "night-2")
    (warning,) = [r for r in outcome.results if r.check_id == "landing_parked_rejected"]
    assert (warning.status, warning.rows_failed, warning.failing_keys_sample) == (
        "failed", 1, ["dosing/dosing.000.csv:2 [before_birth]"])


def test_an_encounter_whose_episode_arrives_later_takes_that_episode(home, tmp_path):
    """Episode references need no parking: an Encounter naming an EpisodeOfCare that has not
    arrived is accepted into the log (nothing it needs is missing), and the marts resolve the
    reference at build time, so the episode that arrives later is the one it counts under."""
    from kap import transform

    night1, night2 = tmp_path / "n1", tmp_path / "n2"
    enc = {"resourceType": "Encounter", "id": "e-1", "status": "finished",
           "meta": {"versionId": "1", "lastUpdated": "2025-05-06T12:00:00Z"},
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
           "type": [{"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "90837"}]}],
           "subject": {"reference": "Patient/p-1"}, "episodeOfCare": [{"reference": "EpisodeOfCare/ep-2"}],
           "serviceProvider": {"reference": "Organization/clinic-01"},
           "period": {"start": "2025-05-06T10:00:00Z", "end": "2025-05-06T10:50:00Z"}}

    def episode(eid: str, start: str, updated: str) -> dict:
        return {"resourceType": "EpisodeOfCare", "id": eid, "status": "active",
                "meta": {"versionId": "1", "lastUpdated": updated},
                "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "1255581000"}]}],
                "patient": {"reference": "Patient/p-1"}, "managingOrganization": {"reference": "Organization/clinic-01"},
                "period": {"start": start}}

    write_ndjson(night1 / "ehr" / "Organization.000.ndjson", [organization()])
    write_ndjson(night1 / "ehr" / "Patient.000.ndjson", [patient("p-1", "MRN-1")])
    write_ndjson(night1 / "ehr" / "EpisodeOfCare.000.ndjson", [episode("ep-1", "2025-05-01", "2025-05-01T08:00:00Z")])
    write_ndjson(night1 / "ehr" / "Encounter.000.ndjson", [enc])
    step_ingest(night1, home)
    assert reasons(home) == [] and parked(home) == []
    write_ndjson(night2 / "ehr" / "EpisodeOfCare.000.ndjson", [episode("ep-2", "2025-05-03", "2025-05-07T08:00:00Z")])
    step_ingest(night2, home)
    transform.build(home)
    (episode_key,) = q(home, "SELECT episode_key FROM marts.therapy_sessions")[0]
    assert q(home, "SELECT source_episode_id = (SELECT episode_id FROM staging.stg_ehr__episodes "
                   "WHERE start_at >= TIMESTAMP '2025-05-03') FROM intermediate.int_patient_episodes "
                   "WHERE episode_key = ?", [episode_key]) == [(True,)]
