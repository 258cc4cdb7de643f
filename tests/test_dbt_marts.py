"""dbt marts on a small, hand-written event log (kap.warehouse.ensure_schema + raw.events rows).

One IV patient with an EHR EpisodeOfCare walks the whole pathway; one esketamine patient has no
EpisodeOfCare (derived episode) and drops out; one patient is screened out. A dosing-log
correction recorded on 2025-02-01 lets the as-of test show that the marts differ by exactly it.
Expected values are worked out from DOMAIN.md section 4 in the comments.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import duckdb
import pytest

from kap import transform
from kap.settings import Settings
from kap.warehouse import writer

T = dt.datetime


class EventLog:
    """Collects raw.events rows; ids are deterministic like ingest's."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(self, event_type: str, patient: str | None, occurred: T, source: str, record_id: str,
            payload: dict, recorded: T | None = None) -> None:
        recorded = recorded or occurred
        event_id = hashlib.sha256(f"{source}|{record_id}|{recorded}|{event_type}".encode()).hexdigest()[:32]
        self.rows.append((event_id, event_type, patient, occurred, recorded, recorded, source,
                          "file-test", record_id, json.dumps(payload, default=str)))

    def enc(self, kind: str, patient: str, start: T, encounter_id: str, status: str = "finished",
            episode_id: str | None = None, clinic: str = "clinic-01") -> None:
        self.add(f"encounter_{kind}", patient, start, "ehr", f"Encounter/{encounter_id}",
                 {"encounter_id": encounter_id, "episode_id": episode_id, "clinic_id": clinic,
                  "session_type": kind, "status": status, "encounter_class": "AMB",
                  "start_at": start.isoformat() + "Z",
                  "end_at": (start + dt.timedelta(minutes=50)).isoformat() + "Z", "duration_min": 50})

    def score(self, patient: str, when: T, obs_id: str, value: float, instrument: str = "phq9") -> None:
        self.add("assessment_scored", patient, when, "ehr", f"Observation/{obs_id}",
                 {"observation_id": obs_id, "instrument": instrument, "score": value, "status": "final"})

    def dose(self, patient: str, start: T, dosing_id: str, route: str, drug: str, mg: float,
             recorded: T | None = None, clinic: str = "clinic-01", **extra) -> None:
        payload = {"dosing_id": dosing_id, "clinic_id": clinic, "route": route, "drug": drug,
                   "dose_mg": mg, "start_at": start.isoformat() + "Z",
                   "end_at": (start + dt.timedelta(minutes=40)).isoformat() + "Z",
                   "monitoring_end_at": (start + dt.timedelta(minutes=130)).isoformat() + "Z",
                   "bp_pre_systolic": 120, "bp_pre_diastolic": 80, "bp_40min_systolic": 150,
                   "bp_40min_diastolic": 90, "bp_discharge_systolic": 125, "bp_discharge_diastolic": 82,
                   "spo2_min": 96, "clinician_id": "prac-1", "is_booster": False}
        payload.update(extra)
        self.add("dose_administered", patient, start, "dosing", dosing_id, payload, recorded)


def scenario() -> EventLog:
    log = EventLog()
    d = T
    log.add("clinic_registered", None, d(2024, 12, 1), "ehr", "Organization/clinic-01",
            {"clinic_id": "clinic-01", "name": "North", "state": "MA", "resource_type": "Organization"})
    for p in ("P1", "P2", "P3"):
        log.add("patient_registered", p, d(2024, 12, 1), "ehr", f"Patient/{p}",
                {"birth_year": 1980, "gender": "female", "state": "MA", "zip3": "021", "clinic_id": "clinic-01"})

    # --- P1: IV, EpisodeOfCare EP1, full pathway ------------------------------------------------
    log.add("episode_opened", "P1", d(2025, 1, 2), "ehr", "EpisodeOfCare/EP1",
            {"episode_id": "EP1", "clinic_id": "clinic-01", "status": "active", "start_at": "2025-01-02T09:00:00Z"})
    log.add("referral_received", "P1", d(2025, 1, 2, 9), "ehr", "ServiceRequest/R1",
            {"referral_id": "R1", "clinic_id": "clinic-01", "status": "active", "authored_at": "2025-01-02T09:00:00Z"})
    log.enc("consult", "P1", d(2025, 1, 5, 10), "E-c1", episode_id="EP1")
    log.add("screening_decided", "P1", d(2025, 1, 5, 11), "ehr", "Observation/S1",
            {"observation_id": "S1", "decision": "eligible", "status": "final"})
    log.enc("preparation", "P1", d(2025, 1, 8, 10), "E-p1", episode_id="EP1")
    log.score("P1", d(2025, 1, 8, 11), "phq-1", 20)          # baseline: last on/before dose 1, 2 days before
    # six IV infusions in 12 days: 01-10, 13, 15, 17, 20, 22 (day 0..12 < 21) -> induction completed
    for n, day in enumerate((10, 13, 15, 17, 20, 22), start=1):
        log.dose("P1", d(2025, 1, day, 10), f"DL-P1-{n}", "IV", "ketamine", 35.0)
    # the EHR also recorded dose 1 (same patient, day, route): one session, source_match 'both'
    log.add("medication_administered", "P1", d(2025, 1, 10, 10), "ehr", "MedicationAdministration/MA1",
            {"administration_id": "MA1", "drug": "ketamine", "route": "IV", "dose_mg": 35,
             "status": "completed", "start_at": "2025-01-10T10:05:00Z", "clinic_id": "clinic-01"})
    # integration 29 h after dose 1: within 72 h, not within 24 h
    log.enc("integration", "P1", d(2025, 1, 11, 15), "E-i1", episode_id="EP1")
    log.score("P1", d(2025, 1, 24, 9), "phq-2", 8)           # 8 <= 10 = 50 % of 20: response; day 14
    log.score("P1", d(2025, 2, 7, 9), "phq-3", 4)            # < 5: remission; day 28
    log.score("P1", d(2025, 3, 1, 9), "phq-4", 12)           # >= 10: relapse, no longer responding
    # the correction: dose 3 amended on 2025-02-01 from 35 to 40 mg
    log.dose("P1", d(2025, 1, 15, 10), "DL-P1-3", "IV", "ketamine", 40.0, recorded=d(2025, 2, 1), is_amended=True)
    # a booster in maintenance, and discharge
    log.dose("P1", d(2025, 3, 3, 10), "DL-P1-7", "IV", "ketamine", 35.0, is_booster=True)
    log.enc("discharge", "P1", d(2025, 3, 20, 10), "E-d1", episode_id="EP1")

    # --- P2: esketamine, no EpisodeOfCare (derived episode), drops out -------------------------
    log.add("referral_received", "P2", d(2025, 1, 6, 9), "ehr", "ServiceRequest/R2",
            {"referral_id": "R2", "clinic_id": "clinic-01", "status": "active", "authored_at": "2025-01-06T09:00:00Z"})
    for n, day in enumerate((13, 16, 20), start=1):
        log.dose("P2", d(2025, 1, day, 10), f"DL-P2-{n}", "IN", "esketamine", 56.0,
                 rems_form_submitted_on=f"2025-01-{day + 2}")
    # a voided dosing row: retracted, never a session
    log.dose("P2", d(2025, 1, 23, 10), "DL-P2-4", "IN", "esketamine", 56.0)
    log.add("record_retracted", "P2", d(2025, 1, 23, 10), "dosing", "DL-P2-4",
            {"retracted_resource": "dosing", "reason": "void"}, recorded=d(2025, 1, 24))
    log.add("appointment_noshow", "P2", d(2025, 1, 27, 10), "ehr", "Appointment/A1",
            {"appointment_id": "A1", "clinic_id": "clinic-01", "status": "noshow",
             "start_at": "2025-01-27T10:00:00Z", "session_type": "dosing"})
    log.add("appointment_cancelled", "P2", d(2025, 1, 30, 10), "ehr", "Appointment/A2",
            {"appointment_id": "A2", "clinic_id": "clinic-01", "status": "cancelled",
             "start_at": "2025-01-30T10:00:00Z", "cancelled_at": "2025-01-29T20:00:00Z", "session_type": "dosing"})

    # --- P3: screened out ----------------------------------------------------------------------
    log.add("referral_received", "P3", d(2025, 1, 7, 9), "ehr", "ServiceRequest/R3",
            {"referral_id": "R3", "clinic_id": "clinic-01", "status": "active", "authored_at": "2025-01-07T09:00:00Z"})
    log.enc("consult", "P3", d(2025, 1, 9, 10), "E-c3")
    log.add("screening_decided", "P3", d(2025, 1, 9, 11), "ehr", "Observation/S3",
            {"observation_id": "S3", "decision": "ineligible", "reason_code": "38341003", "status": "final"})
    return log


def load(settings: Settings, log: EventLog) -> None:
    with writer(settings) as con:
        con.executemany("insert into raw.events values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", log.rows)


def query(settings: Settings, sql: str) -> list[dict]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        cur = con.execute(sql)
        names = [c[0] for c in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Settings:
    settings = Settings.from_env(tmp_path_factory.mktemp("kap_home"))
    load(settings, scenario())
    transform.build(settings)          # models + data tests (unit tests: test_dbt_unit_tests.py)
    return settings


def sk(settings: Settings, entity: str, source_id: str) -> str:
    """The surrogate key the marts carry for a source record id (dbt macro source_key)."""
    return query(settings, f"""select left(sha256(value || '|{entity}|{source_id}'), 32) as k
                               from restricted.secrets where name = 'source_id_key'""")[0]["k"]


def by_patient(settings: Settings, table: str) -> dict[str, dict]:
    return {r["patient_key"]: r for r in query(settings, f"select * from marts.{table}")}


def test_care_pathways_has_one_row_per_episode(built):
    rows = by_patient(built, "care_pathways")
    assert set(rows) == {"P1", "P2", "P3"}
    p1 = rows["P1"]
    assert p1["episode_key"] == sk(built, "EpisodeOfCare", "EP1")
    assert p1["referral_date"] == dt.date(2025, 1, 2)
    assert p1["screening_result"] == "eligible"
    assert p1["preparation_sessions"] == 1 and p1["has_preparation_before_first_dose"]
    assert p1["first_dose_date"] == dt.date(2025, 1, 10)
    # 7 sessions: the EHR copy of dose 1 is not a second dose
    assert (p1["doses_total"], p1["induction_doses"], p1["maintenance_doses"]) == (7, 6, 1)
    assert p1["is_induction_completed"] and p1["induction_completed_at"] == T(2025, 1, 22, 10)
    assert p1["current_phase"] == "discharged" and p1["discharged_at"] == T(2025, 3, 20, 10)
    assert not p1["is_dropout"]


def test_derived_episode_and_dropout(built):
    p2 = by_patient(built, "care_pathways")["P2"]
    # no EpisodeOfCare: derived episode 1, starting at the referral
    assert p2["episode_key"] == "P2-E1" and p2["episode_origin"] == "derived"
    assert p2["episode_start_at"] == T(2025, 1, 6, 9)
    # the voided dose DL-P2-4 is gone: 3 IN doses < 8 -> induction not completed
    assert p2["doses_total"] == 3 and not p2["is_induction_completed"]
    # now = latest recorded_at = 2025-03-20 10:00 (P1's discharge); last attended = dose 2025-01-20
    # -> 59 days >= 30: dropout, dropped out at 2025-01-20 + 30 days = 2025-02-19
    assert p2["is_dropout"] and p2["current_phase"] == "dropped_out"
    assert p2["dropped_out_at"] == T(2025, 2, 19, 10)


def test_screened_out_patient(built):
    p3 = by_patient(built, "care_pathways")["P3"]
    assert p3["current_phase"] == "screened_out"
    assert p3["screening_reason_code"] == "38341003"
    assert not p3["is_dropout"] and p3["doses_total"] == 0


def test_pathway_transitions_follow_the_phases(built):
    rows = query(built, "select to_phase from marts.pathway_transitions "
                        f"where episode_key = '{sk(built, 'EpisodeOfCare', 'EP1')}' order by transition_number")
    assert [r["to_phase"] for r in rows] == ["referral", "screening", "preparation", "induction",
                                             "maintenance", "discharged"]


def test_patient_outcomes_phq9(built):
    rows = query(built, "select * from marts.patient_outcomes "
                        f"where episode_key = '{sk(built, 'EpisodeOfCare', 'EP1')}' and instrument = 'phq9'")
    assert len(rows) == 1
    o = rows[0]
    assert o["baseline_score"] == 20 and o["latest_score"] == 12 and o["best_score"] == 4
    assert o["days_to_response"] == 14           # 2025-01-10 -> 2025-01-24
    assert o["days_to_remission"] == 28          # 2025-01-10 -> 2025-02-07
    # durability: first response 01-24 until the first later non-responding score 03-01 = 36 days
    assert o["durability_days"] == 36 and o["is_censored"] is False
    assert o["has_relapse"] and o["relapse_at"] == T(2025, 3, 1, 9)
    assert o["pct_change_latest"] == pytest.approx(-40.0)   # (12 - 20) / 20


def test_dosing_sessions_one_row_per_dose(built):
    rows = query(built, "select dose_key, source_match, dose_number, phase from marts.dosing_sessions "
                        "where patient_key = 'P1' order by dose_number")
    assert len(rows) == 7
    assert rows[0]["source_match"] == "both" and rows[0]["dose_key"] == "dl-" + sk(built, "dosing", "DL-P1-1")
    assert [r["phase"] for r in rows] == ["induction"] * 6 + ["maintenance"]


def test_adherence_patient(built):
    rows = by_patient(built, "adherence_patient")
    p1, p2 = rows["P1"], rows["P2"]
    # P1: 1 of 7 doses followed by integration within 72 h; none within 24 h
    assert p1["doses_with_integration_72h"] == 1 and p1["integration_24h_share"] == 0
    assert p1["has_baseline_assessment"] and not p1["has_induction_gap_over_7d"]
    # P2: 2 appointments due, one noshow, one cancelled 14 h before start (late)
    assert (p2["appointments_due"], p2["noshows"], p2["late_cancellations"]) == (2, 1, 1)
    assert p2["noshow_rate"] == 0.5 and p2["late_cancel_rate"] == 0.5
    assert p2["is_dropout"]


def test_dosing_safety(built):
    rows = query(built, "select * from marts.dosing_safety where patient_key = 'P2' order by dose_number")
    assert len(rows) == 3
    first = rows[0]
    # 150 - 120 = 30 systolic (< 40), 90 - 80 = 10 diastolic (< 25): no BP flag
    assert first["max_systolic_rise"] == 30 and not first["has_bp_rise_flag"]
    # 3 readings, 130 min, SpO2, REMS 2 days after: complete
    assert first["bp_readings"] == 3 and first["monitoring_minutes"] == 130
    assert first["has_rems_within_7d"] and first["is_monitoring_complete"]


def test_clinic_daily_counts(built):
    rows = {r["activity_date"]: r for r in query(built, "select * from marts.clinic_daily")}
    assert rows[dt.date(2025, 1, 10)]["dosing_sessions"] == 1
    assert rows[dt.date(2025, 1, 27)]["noshows"] == 1
    assert sum(r["dosing_sessions"] for r in rows.values()) == 10   # 7 (P1) + 3 (P2)


def test_as_of_before_and_after_a_correction(tmp_path):
    """Built as of 2025-01-31 and as of 2025-02-02, the dosing marts differ only by dose 3's mg."""
    settings = Settings.from_env(tmp_path / "home")
    load(settings, scenario())
    snapshot = {}
    for as_of in ("2025-01-31T00:00:00", "2025-02-02T00:00:00"):
        transform.build(settings, as_of=as_of)
        snapshot[as_of] = {r["dose_key"]: r for r in query(settings, "select * from marts.dosing_sessions")}
    before, after = snapshot.values()
    assert before.keys() == after.keys()
    changed = {k: {c for c in before[k] if before[k][c] != after[k][c]} for k in before}
    changed = {k: v for k, v in changed.items() if v}
    dose3 = "dl-" + sk(settings, "dosing", "DL-P1-3")
    assert changed == {dose3: {"dose_mg", "log_dose_mg"}}
    assert (before[dose3]["dose_mg"], after[dose3]["dose_mg"]) == (35.0, 40.0)


def test_a_malformed_as_of_is_rejected(tmp_path):
    with pytest.raises(ValueError):
        transform.build(Settings.from_env(tmp_path / "home"), as_of="yesterday")


def test_failing_build_names_the_failing_node(tmp_path):
    """Two dosing-log records claiming one dosing_id break a key test (severity error)."""
    settings = Settings.from_env(tmp_path / "home")
    log = EventLog()
    log.dose("P9", T(2025, 1, 10, 10), "DL-X", "IV", "ketamine", 35.0)
    log.add("dose_administered", "P9", T(2025, 1, 11, 10), "dosing", "DL-X-copy",
            {"dosing_id": "DL-X", "route": "IV", "drug": "ketamine", "dose_mg": 30,
             "start_at": "2025-01-11T10:00:00Z"})
    load(settings, log)
    with pytest.raises(transform.DbtBuildError) as failure:
        transform.build(settings)
    assert any("stg_dosing__doses" in name and "dosing_id" in name for name in failure.value.failures)


def test_parse_writes_a_manifest(tmp_path):
    settings = Settings.from_env(tmp_path / "home")
    manifest = transform.parse(settings)
    nodes = json.loads(manifest.read_text())["nodes"]
    assert "model.kap.care_pathways" in nodes
