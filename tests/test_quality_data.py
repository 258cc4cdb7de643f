"""Minimal warehouses for the data-quality tests: good data that passes every check, and, per
catalogue row, the smallest change that makes exactly that check fail.

Used by test_quality_catalogue.py, test_quality_gate.py and test_publish.py. The raw tables are
created here *without* their keys and NOT NULL constraints (before kap.warehouse.ensure_schema,
whose CREATE IF NOT EXISTS then keeps them), so the checks that guard what the constraints also
guard (a duplicate or missing event_id) can be shown to fail too.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from kap.quality.catalogue import Check
from kap.quality.targets import LANDING_VIEWS

RUN = "run-under-test"
EARLIER_RUNS = ("run-earlier-1", "run-earlier-2")
INGESTED_AT = dt.datetime(2025, 3, 1, 12, 0)
NOW = "2025-06-01 00:00:00"
T = dt.datetime

RAW_DDL = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS restricted;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE TABLE raw.ingest_files (
    file_id VARCHAR, path VARCHAR, sha256 VARCHAR, source VARCHAR, status VARCHAR,
    reject_reason VARCHAR, size_bytes BIGINT, records_read BIGINT, records_accepted BIGINT,
    records_quarantined BIGINT, records_duplicate BIGINT, records_ignored BIGINT,
    events_added BIGINT, ingested_at TIMESTAMP, run_id VARCHAR);
CREATE TABLE raw.events (
    event_id VARCHAR, event_type VARCHAR, patient_key VARCHAR, occurred_at TIMESTAMP,
    recorded_at TIMESTAMP, ingested_at TIMESTAMP, source VARCHAR, file_id VARCHAR,
    source_record_id VARCHAR, payload JSON);
CREATE TABLE raw.quarantine (
    file_id VARCHAR, line_number BIGINT, reason_code VARCHAR, detail VARCHAR, raw_record VARCHAR,
    quarantined_at TIMESTAMP);
CREATE TABLE restricted.patient_keys (
    patient_key VARCHAR, id_system VARCHAR, id_value VARCHAR, file_id VARCHAR, created_at TIMESTAMP);
"""


def iso(value: dt.datetime) -> str:
    return value.isoformat() + "Z"


# --- raw tables ------------------------------------------------------------------------------

def add_file(con, path: str, source: str = "ehr", run_id: str = RUN, status: str = "ingested",
             reject_reason: str | None = None, read: int = 10, accepted: int | None = None,
             quarantined: int = 0, duplicate: int = 0, ignored: int = 0, events_added: int | None = None,
             ingested_at: dt.datetime = INGESTED_AT) -> str:
    accepted = read - quarantined - duplicate - ignored if accepted is None else accepted
    file_id = f"f-{path}"
    con.execute("INSERT INTO raw.ingest_files VALUES (?, ?, ?, ?, ?, ?, 100, ?, ?, ?, ?, ?, ?, ?, ?)",
                [file_id, path, file_id, source, status, reject_reason, read, accepted, quarantined,
                 duplicate, ignored, accepted if events_added is None else events_added, ingested_at, run_id])
    return file_id


def add_quarantine(con, file_id: str, n: int, reason: str = "out_of_range") -> None:
    for line in range(n):
        con.execute("INSERT INTO raw.quarantine VALUES (?, ?, ?, 'test', '{}', ?)",
                    [file_id, line + 1, reason, INGESTED_AT])


_event_seq = [0]
AUTO = "auto"


def add_event(con, file_id: str, event_type: str, payload: dict, patient_key: str | None = "pk-1",
              occurred_at: dt.datetime | None = T(2025, 2, 10, 10), event_id: str | None = AUTO,
              source: str = "ehr", ingested_at: dt.datetime = INGESTED_AT) -> str:
    _event_seq[0] += 1
    event_id = f"ev-{_event_seq[0]:06d}" if event_id == AUTO else event_id
    con.execute("INSERT INTO raw.events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [event_id, event_type, patient_key, occurred_at, occurred_at or INGESTED_AT, ingested_at,
                 source, file_id, f"rec-{event_id}", json.dumps(payload)])
    return event_id


# A good payload per landing view (the view's first event type).
GOOD_PAYLOADS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "run_assessments": ("assessment_scored", "ehr", {
        "observation_id": "obs-1", "instrument": "phq9", "code": "44261-6", "score": 14, "status": "final"}),
    "run_vitals": ("vital_signs_recorded", "ehr", {
        "observation_id": "obs-2", "measure": "blood_pressure", "systolic": 128, "diastolic": 82,
        "value": None, "unit": "mm[Hg]", "status": "final"}),
    "run_medications": ("medication_administered", "ehr", {
        "administration_id": "ma-1", "drug": "ketamine", "route": "IV", "dose_mg": 35, "status": "completed",
        "start_at": iso(T(2025, 2, 10, 10)), "end_at": iso(T(2025, 2, 10, 10, 40))}),
    "run_doses": ("dose_administered", "dosing", {
        "dosing_id": "dose-1", "clinic_id": "clinic-01", "route": "IN", "drug": "esketamine", "dose_mg": 56,
        "dose_mg_per_kg": 0.8, "weight_kg": 70, "start_at": iso(T(2025, 2, 10, 10)),
        "end_at": iso(T(2025, 2, 10, 10, 10)), "monitoring_end_at": iso(T(2025, 2, 10, 12, 10)),
        "bp_pre_systolic": 122, "bp_pre_diastolic": 80, "bp_40min_systolic": 148, "bp_40min_diastolic": 92,
        "bp_discharge_systolic": 126, "bp_discharge_diastolic": 82, "heart_rate_pre": 72, "spo2_min": 96,
        "cadss_total": 18, "moaas_min": 4, "is_booster": False, "clinician_id": "prac-1"}),
    "run_sessions": ("encounter_integration", "ehr", {
        "encounter_id": "enc-1", "session_type": "integration", "status": "finished", "encounter_class": "AMB",
        "start_at": iso(T(2025, 2, 11, 10)), "end_at": iso(T(2025, 2, 11, 10, 50)), "duration_min": 50}),
    "run_notes": ("therapy_note_documented", "notes", {
        "note_id": "note-1", "session_type": "integration", "modality": "ACT",
        "start_at": iso(T(2025, 2, 11, 10)), "end_at": iso(T(2025, 2, 11, 10, 50)), "duration_min": 50,
        "status": "final", "text_sha256": "ab" * 32, "text_length": 812, "tags": ["ae_nausea"]}),
}


def create_raw(con) -> None:
    con.execute(RAW_DDL)
    from kap.warehouse import ensure_schema

    ensure_schema(con)


def good_landing(con) -> dict[str, str]:
    """This run: three good files, one good event per landing view, a 0.5 % quarantine share,
    and two earlier runs of the same size as the volume baseline. Returns file ids by source."""
    con.execute("INSERT INTO restricted.patient_keys VALUES ('pk-1', 'fhir', 'p-0001', 'f0', ?)", [INGESTED_AT])
    files = {
        "ehr": add_file(con, "ehr/d1/Observation.000.ndjson", "ehr", read=1000, quarantined=5, events_added=1000),
        "dosing": add_file(con, "dosing/d1/dosing.csv", "dosing", read=10, events_added=10),
        "notes": add_file(con, "notes/d1/notes.jsonl", "notes", read=10, events_added=10),
    }
    add_quarantine(con, files["ehr"], 5)
    for i, run in enumerate(EARLIER_RUNS):
        add_file(con, f"ehr/d0{i}/Observation.000.ndjson", "ehr", run_id=run, read=1020, events_added=1020,
                 ingested_at=INGESTED_AT - dt.timedelta(days=2 - i))
    for view, (event_type, source, payload) in GOOD_PAYLOADS.items():
        add_event(con, files[source], event_type, payload, source=source)
    add_event(con, files["ehr"], "clinic_registered", {"clinic_id": "clinic-01", "name": "North"},
              patient_key=None, occurred_at=None)
    for measure, value, unit in (("heart_rate", 70, "/min"), ("spo2", 97, "%"), ("weight", 72, "kg")):
        add_event(con, files["ehr"], "vital_signs_recorded",
                  {"observation_id": f"obs-{measure}", "measure": measure, "value": value, "unit": unit,
                   "status": "final"})
    stage_lake(con, sync=True)
    return files


def stage_lake(con, sync: bool) -> None:
    """The lake check's input (kap.lake.stage_check) over this connection's lake, written now
    (sync) or left as it was written before."""
    from kap import lake

    if sync:
        _LAKES[id(con)] = Path(tempfile.mkdtemp(prefix="lake-", dir=_LAKE_BASE.name))
        lake.sync(con, _LAKES[id(con)])
    lake.stage_check(con, _LAKES[id(con)])


_LAKE_BASE = tempfile.TemporaryDirectory(prefix="kap-test-lakes-")
_LAKES: dict[int, Path] = {}


# --- marts -----------------------------------------------------------------------------------

GOOD_MARTS: dict[str, dict[str, Any]] = {
    "care_pathways": {
        "episode_key": "ep-1", "patient_key": "pk-1", "current_phase": "induction", "episode_route": "IV",
        "episode_start_at": T(2025, 1, 1), "referred_at": T(2025, 1, 2), "first_dose_at": T(2025, 1, 10),
        "last_dose_at": T(2025, 1, 20), "last_attended_at": T(2025, 1, 21), "discharged_at": None,
        "induction_doses": 6, "is_induction_completed": True, "is_dropout": False},
    "pathway_transitions": {
        "transition_key": "ep-1:induction", "episode_key": "ep-1", "to_phase": "induction",
        "days_in_from_phase": 3, "entered_at": T(2025, 1, 10)},
    "dosing_sessions": {
        "dose_key": "d-1", "episode_key": "ep-1", "patient_key": "pk-1", "route": "IV", "drug": "ketamine",
        "dose_mg": 35.0, "dose_mg_per_kg": 0.5, "moaas_min": 3, "dose_number": 1, "gap_days": 2,
        "start_at": T(2025, 1, 10, 10), "end_at": T(2025, 1, 10, 10, 40),
        "monitoring_end_at": T(2025, 1, 10, 12), "has_source_conflict": False},
    "therapy_sessions": {
        "session_key": "s-1", "patient_key": "pk-1", "session_type": "integration", "duration_min": 50,
        "is_attended": True, "start_at": T(2025, 1, 11, 10), "end_at": T(2025, 1, 11, 10, 50)},
    "assessments": {
        "observation_id": "obs-1", "patient_key": "pk-1", "instrument": "phq9", "score": 12.0,
        "scored_at": T(2025, 1, 9)},
    "patient_outcomes": {
        "outcome_key": "ep-1:phq9", "patient_key": "pk-1", "instrument": "phq9", "baseline_score": 20.0,
        "has_baseline": True, "is_responder": True, "is_remitter": False, "days_to_response": 14,
        "durability_days": 30},
    "adherence_patient": {
        "episode_key": "ep-1", "integration_72h_share": 0.8, "integration_24h_share": 0.5,
        "noshow_rate": 0.1, "doses_total": 6, "doses_with_integration_72h": 5},
    "adherence_weekly": {
        "clinic_week_key": "clinic-01:2025-01-06", "monitoring_complete_share": 1.0,
        "week_start": dt.date(2025, 1, 6)},
    "dosing_safety": {
        "dose_key": "d-1", "drug": "esketamine", "bp_readings": 3, "spo2_min": 96, "monitoring_minutes": 130},
    "clinic_daily": {
        "clinic_day_key": "clinic-01:2025-01-10", "clinic_id": "clinic-01", "activity_date": dt.date(2025, 1, 10),
        "appointments_booked": 2, "appointments_attended": 1, "dosing_sessions": 1,
        "therapy_sessions_attended": 1, "new_patients": 0, "active_episodes": 3, "chair_minutes": 120},
    "integration_outcomes": {
        "cell_key": "IV:80_plus", "episode_route": "IV", "integration_band": "80_plus", "instrument": "phq9",
        "patients": 7, "episodes": 7, "responders": 6, "response_rate": 0.857, "is_suppressed": False},
    "care_team": {
        "care_team_key": "ep-1:th-1", "episode_key": "ep-1", "staff_id": "th-1", "staff_role": "therapist",
        "therapy_sessions": 3, "is_usual_therapist": True},
    "care_continuity": {
        "episode_key": "ep-1", "therapy_sessions": 3, "upc_index": 1.0, "coc_index": 1.0,
        "continuity_band": "upc_75_plus", "is_integrated_by_preparer": True},
    "staff_weekly": {
        "staff_week_key": "clinic-1:th-1:2025-01-06", "clinic_id": "clinic-1", "staff_id": "th-1",
        "staff_role": "therapist", "active_caseload": 3, "chair_minutes": 0, "week_start": dt.date(2025, 1, 6)},
    "care_team_outcomes": {
        "cell_key": "IV:upc_75_plus", "episode_route": "IV", "continuity_band": "upc_75_plus",
        "patients": 7, "response_rate": 0.571, "is_suppressed": False},
}


NULL_TYPES = {"discharged_at": "TIMESTAMP"}


def _sql_type(column: str, value: Any) -> str:
    if value is None:
        return NULL_TYPES[column]
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    return "VARCHAR"


def create_mart(con, table: str, rows: list[dict[str, Any]]) -> None:
    """(Re)create marts.<table> typed like GOOD_MARTS[table], with these rows."""
    good = GOOD_MARTS[table]
    con.execute(f"DROP TABLE IF EXISTS marts.{table}")
    con.execute(f"CREATE TABLE marts.{table} ("
                + ", ".join(f'"{c}" {_sql_type(c, v)}' for c, v in good.items()) + ")")
    for row in rows:
        con.execute(f"INSERT INTO marts.{table} VALUES ({', '.join('?' for _ in good)})",
                    [row.get(c) for c in good])


def good_marts(con) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    for table, row in GOOD_MARTS.items():
        create_mart(con, table, [row])


# --- the smallest change that breaks one check -----------------------------------------------

# Condition checks need a hand-made fault; the other types are broken generically.
LANDING_CONDITION_FAULTS: dict[str, dict[str, Any]] = {
    "landing_files_reconciled": {"file": {"read": 10, "accepted": 5}},
    "landing_files_no_schema_rejection": {"file": {"status": "rejected", "reject_reason": "missing_columns",
                                                   "read": 0, "accepted": 0}},
    "landing_files_not_rejected": {"file": {"status": "rejected", "reject_reason": "empty_file",
                                            "read": 0, "accepted": 0}},
    "landing_files_some_accepted": {"file": {"read": 10, "quarantined": 10}},
    "landing_quarantine_share_critical": {"quarantine": (10, 5)},
    "landing_quarantine_share_warning": {"quarantine": (100, 2)},
    "landing_volume_vs_norm": {"volume": "surge"},
    "landing_volume_files": {"volume": "empty"},
    "landing_events_patient_known": {"event": {"patient_key": "pk-unknown"}},
    "landing_events_not_future": {"event": {"occurred_at": INGESTED_AT + dt.timedelta(days=3)}},
    "landing_events_no_identifiers": {"payload": {"text": "Jane Doe said ..."}},
    "landing_events_offset_assumed": {"payload": {"time_zone_assumed": "America/New_York"}},
    "landing_vitals_bp_complete": {"payload": {"diastolic": None}},
    "landing_vitals_bp_order": {"payload": {"systolic": 80, "diastolic": 120}},
    "landing_medications_dose_by_route": {"payload": {"route": "IV", "dose_mg": 900}},
    "landing_medications_end_after_start": {"payload": {"end_at": iso(T(2025, 2, 10, 9))}},
    "landing_doses_end_after_start": {"payload": {"end_at": iso(T(2025, 2, 10, 9))}},
    "landing_doses_monitoring_after_start": {"payload": {"monitoring_end_at": iso(T(2025, 2, 10, 9))}},
    "landing_doses_esketamine_three_bp": {"payload": {"bp_40min_systolic": None}},
    "landing_sessions_end_after_start": {"payload": {"end_at": iso(T(2025, 2, 11, 9))}},
    "landing_notes_end_after_start": {"payload": {"end_at": iso(T(2025, 2, 11, 9))}},
    "landing_superseded_in_file": {"reason": "superseded_in_file"},
    "landing_manifest_files_present": {"manifest_file": ("output", "missing", 12, None)},
    "landing_manifest_counts_match": {"manifest_file": ("output", "count_mismatch", 12, 11)},
    "landing_manifest_export_errors": {"manifest_file": ("error", "errors_reported", None, 3)},
    "landing_manifest_usable": {"manifest_problem": "transactionTime missing or not an instant"},
    "landing_log_not_future": {"log_event": {"occurred_at": INGESTED_AT + dt.timedelta(days=3)}},
    "landing_log_recorded_not_after_ingest": {"log_event": {"recorded_at": INGESTED_AT + dt.timedelta(hours=2)}},
    "landing_log_patient_known": {"log_event": {"patient_key": "pk-unknown"}},
    "landing_parked_too_long": {"parked": ("unknown_patient", INGESTED_AT - dt.timedelta(days=8))},
    "landing_parked_identity_conflicts": {"parked": ("identity_conflict", INGESTED_AT)},
    "landing_parked_rejected": {"parked": ("unknown_patient", INGESTED_AT, "rejected")},
    "landing_superseded_across_files": {"across_files": True},
    "landing_lake_matches_log": {"lake": "an event committed after the lake was written"},
}

MART_CONDITION_FAULTS: dict[str, dict[str, Any]] = {
    "marts_care_pathways_first_dose_after_referral": {"first_dose_at": T(2024, 12, 1), "last_dose_at": None},
    "marts_care_pathways_last_dose_after_first": {"last_dose_at": T(2025, 1, 5)},
    "marts_care_pathways_discharge_after_start": {"discharged_at": T(2024, 12, 1)},
    "marts_care_pathways_not_after_as_of": {"last_dose_at": T(2030, 1, 1)},
    "marts_pathway_transitions_episode_known": {"episode_key": "ep-unknown"},
    "marts_pathway_transitions_not_after_as_of": {"entered_at": T(2030, 1, 1)},
    "marts_dosing_sessions_dose_by_route": {"route": "IN", "dose_mg": 200.0},
    "marts_dosing_sessions_end_after_start": {"end_at": T(2025, 1, 10, 9)},
    "marts_dosing_sessions_monitoring_after_start": {"monitoring_end_at": T(2025, 1, 10, 9)},
    "marts_dosing_sessions_not_after_as_of": {"start_at": T(2030, 1, 1), "end_at": None, "monitoring_end_at": None},
    "marts_dosing_sessions_source_conflict": {"has_source_conflict": True},
    "marts_therapy_sessions_end_after_start": {"end_at": T(2025, 1, 11, 9)},
    "marts_therapy_sessions_not_after_as_of": {"start_at": T(2030, 1, 1), "end_at": None},
    "marts_assessments_score_range": {"instrument": "gad7", "score": 25.0},
    "marts_assessments_not_after_as_of": {"scored_at": T(2030, 1, 1)},
    "marts_patient_outcomes_baseline_range": {"baseline_score": 28.0},
    "marts_patient_outcomes_responder_has_baseline": {"has_baseline": False},
    "marts_adherence_patient_24h_within_72h": {"integration_24h_share": 0.9},
    "marts_adherence_weekly_not_after_as_of": {"week_start": dt.date(2030, 1, 7)},
    "marts_dosing_safety_session_known": {"dose_key": "d-unknown"},
    "marts_dosing_safety_esketamine_three_bp": {"bp_readings": 2},
    "marts_clinic_daily_counts_not_negative": {"chair_minutes": -5},
    "marts_clinic_daily_not_after_as_of": {"activity_date": dt.date(2030, 1, 1)},
    "marts_integration_outcomes_small_cells_suppressed": {"patients": 4},
    "marts_care_team_usual_therapist_has_therapy": {"therapy_sessions": 0},
    "marts_care_continuity_coc_needs_two_sessions": {"therapy_sessions": 1},
    "marts_care_team_outcomes_small_cells_suppressed": {"patients": 4},
}

_EQUALS = re.compile(r"^\s*(\w+)\s*=\s*'([^']*)'\s*$")


def where_values(check: Check) -> dict[str, Any]:
    """Column values that satisfy a simple `col = 'value'` filter of a check."""
    match = _EQUALS.match(check.where) if check.where else None
    return {match.group(1): match.group(2)} if match else {}


def bad_value(check: Check, good: Any = None) -> Any:
    if check.check_type == "not_null":
        return None
    if check.check_type == "in_set":
        return "zz-not-a-code"
    if check.check_type == "between":
        low, high = check.bounds()
        return high + 1 if high is not None else low - 1
    raise ValueError(check.check_type)


def break_landing(con, check: Check) -> None:
    """Good landing data plus the fault that fails `check` (a landing check)."""
    view = check.target.split(".", 1)[1]
    fault = LANDING_CONDITION_FAULTS.get(check.check_id, {})
    if fault.get("volume") == "empty":
        con.execute("DELETE FROM raw.ingest_files WHERE run_id = ?", [RUN])
        return
    files = good_landing(con)
    if fault.get("volume") == "surge":
        add_file(con, "ehr/d1/Encounter.000.ndjson", "ehr", read=20000, events_added=20000)
        return
    if "quarantine" in fault:
        read, n = fault["quarantine"]
        file_id = add_file(con, "dosing/d1/dosing-extra.csv", "dosing", read=read, quarantined=n)
        add_quarantine(con, file_id, n, "out_of_range")
        return
    if "reason" in fault:
        add_quarantine(con, files["ehr"], 2, fault["reason"])
        return
    if "manifest_file" in fault or "manifest_problem" in fault:
        con.execute("INSERT INTO raw.export_manifests VALUES ('m-1', 'ehr/d1/manifest.json', 'ehr/d1', ?, "
                    "NULL, 1, 0, 0, ?, ?, ?)", [None if "manifest_problem" in fault else INGESTED_AT,
                                                fault.get("manifest_problem"), RUN, INGESTED_AT])
        if "manifest_file" in fault:
            kind, status, listed, found = fault["manifest_file"]
            con.execute("INSERT INTO raw.export_manifest_files VALUES ('m-1', ?, 'Encounter', "
                        "'https://ehr.example/bulk/Encounter.000.ndjson', 'ehr/d1/Encounter.000.ndjson', "
                        "?, ?, ?, ?, ?)", [kind, listed, found, status, RUN, INGESTED_AT])
        return
    if "log_event" in fault:
        spec = fault["log_event"]
        event_id = add_event(con, files["ehr"], "encounter_integration", GOOD_PAYLOADS["run_sessions"][2],
                             patient_key=spec.get("patient_key", "pk-1"),
                             occurred_at=spec.get("occurred_at", T(2025, 2, 10, 10)))
        if "recorded_at" in spec:
            con.execute("UPDATE raw.events SET recorded_at = ? WHERE event_id = ?", [spec["recorded_at"], event_id])
        return
    if "lake" in fault:
        add_event(con, files["ehr"], "encounter_integration", GOOD_PAYLOADS["run_sessions"][2])
        stage_lake(con, sync=False)
        return
    if "parked" in fault:
        reason, parked_at, *status = fault["parked"]
        status = status[0] if status else "parked"
        closed = (INGESTED_AT, RUN, "before_birth: occurred in 1970, before birth year 1980") \
            if status != "parked" else (None, None, None)
        con.execute("INSERT INTO raw.knowledge_cutoffs VALUES (?, ?, 'latest_ingest_time', NULL, ?, ?, ?)",
                    [RUN, INGESTED_AT, RUN, INGESTED_AT, INGESTED_AT])
        con.execute("INSERT INTO restricted.parked_records VALUES (?, 7, ?, 'dosing', 'ev-parked', "
                    "'dose_administered', 'mrn', 'MRN-9', 'clinic-01', ?, ?, 'dose-9', '{}', NULL, NULL, "
                    "?, ?, ?, ?, ?, ?)", [files["dosing"], reason, parked_at, parked_at, parked_at, RUN, status, *closed])
        return
    if "across_files" in fault:
        # one resource without meta in two files of this run: both versions took the files' ingest time
        for n in (1, 2):
            file_id = add_file(con, f"ehr/d1/Observation.00{n}.ndjson", "ehr", read=1)
            con.execute("INSERT INTO raw.events VALUES (?, 'assessment_scored', 'pk-1', ?, ?, ?, 'ehr', ?, "
                        "'Observation/o-9', '{}')", [f"ev-across-{n}", INGESTED_AT, INGESTED_AT, INGESTED_AT, file_id])
        return
    if view == "run_files":
        spec = dict(fault.get("file", {}))
        if check.check_type == "in_set":
            spec[check.column] = bad_value(check)
        add_file(con, "dosing/d1/broken.csv", **{"source": "dosing", **spec})
        return
    if view == "run_events":
        event_type, source, payload = GOOD_PAYLOADS["run_sessions"]
        kwargs: dict[str, Any] = {"source": source}
        payload = {**payload, **fault.get("payload", {})}
        kwargs.update(fault.get("event", {}))
        if check.check_type == "in_set" and check.column == "event_type":
            event_type = "zz_unknown_event"
        elif check.check_type == "in_set":
            kwargs[check.column] = bad_value(check)
        elif check.check_type == "not_null":
            if check.column == "event_id":
                kwargs["event_id"] = None
            else:
                kwargs[check.column] = None
        elif check.check_type == "unique":
            first = add_event(con, files["ehr"], event_type, payload, source=source)
            kwargs["event_id"] = first
        add_event(con, files["ehr"], event_type, payload, **kwargs)
        return
    event_type, source, payload = GOOD_PAYLOADS[view]
    payload = {**payload, **where_values(check), **fault.get("payload", {})}
    if check.check_type in ("not_null", "in_set", "between"):
        payload[check.column] = bad_value(check)
    elif check.check_id not in LANDING_CONDITION_FAULTS:
        raise AssertionError(f"no fault recipe for {check.check_id}")
    if view == "run_vitals" and payload.get("measure") != "blood_pressure":
        payload.pop("systolic", None)
        payload.pop("diastolic", None)
    add_event(con, files[source], event_type, payload, source=source)


def break_marts(con, check: Check) -> None:
    """Good marts plus the fault that fails `check` (a marts check)."""
    good_marts(con)
    table = check.target.split(".", 1)[1]
    good = dict(GOOD_MARTS[table])
    if check.check_type == "row_count_min":
        create_mart(con, table, [])
        return
    if check.check_type == "unique":
        create_mart(con, table, [good, dict(good)])
        return
    bad = {**good, **where_values(check)}
    if check.check_type == "condition":
        if check.check_id not in MART_CONDITION_FAULTS:
            raise AssertionError(f"no fault recipe for {check.check_id}")
        bad.update(MART_CONDITION_FAULTS[check.check_id])
    else:
        bad[check.column] = bad_value(check)
    create_mart(con, table, [bad])


def memory_warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    create_raw(con)
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    return con
