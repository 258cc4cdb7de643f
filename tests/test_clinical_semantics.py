"""Clinical semantics, end to end on hand-written FHIR exports (ingest -> dbt build -> marts).

Each test is one rule, with values worked out by hand (DOMAIN.md section 4):
- an outcome without a score after the first dose is unknown, not "no";
- a whole EHR history (births, check-ups, other orders) is not KAP care;
- screened-out episodes are not active in clinic_daily;
- day-level measures use the clinic's local day;
- a time sent without a UTC offset is read on the clinic's wall clock (or quarantined).
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from kap import transform
from kap.pipeline import step_ingest
from kap.settings import Settings

KAP = "http://kap-pipeline.example/fhir/CodeSystem/kap"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TZ_EXT = "http://hl7.org/fhir/StructureDefinition/timezone"


# --- a tiny FHIR export writer -------------------------------------------------------------------

class Export:
    """Resources by type, written as one bulk NDJSON file per type."""

    def __init__(self) -> None:
        self.resources: dict[str, list[dict]] = {}
        self.n = 0

    def add(self, resource: dict) -> dict:
        self.n += 1
        resource.setdefault("id", f"{resource['resourceType'][:3].lower()}-{self.n}")
        resource.setdefault("meta", {"versionId": "1", "lastUpdated": "2025-06-01T00:00:00Z"})
        self.resources.setdefault(resource["resourceType"], []).append(resource)
        return resource

    def write(self, landing: Path, drop: str = "2025-06-01") -> Path:
        folder = landing / "ehr" / drop
        folder.mkdir(parents=True, exist_ok=True)
        for rtype, items in self.resources.items():
            (folder / f"{rtype}.000.ndjson").write_text("".join(json.dumps(r) + "\n" for r in items))
        return landing

    # resources
    def clinic(self, cid: str, zone: str | None = None) -> None:
        org = {"resourceType": "Organization", "id": cid, "name": f"Clinic {cid}",
               "address": [{"state": "NY"}]}
        if zone:
            org["extension"] = [{"url": TZ_EXT, "valueCode": zone}]
        self.add(org)

    def patient(self, pid: str, clinic: str, born: str = "1985-04-02") -> None:
        self.add({"resourceType": "Patient", "id": pid, "birthDate": born, "gender": "female",
                  "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": f"MRN-{pid}"}],
                  "managingOrganization": {"reference": f"Organization/{clinic}"}})

    def referral(self, pid: str, clinic: str, at: str, code: str = "3457005") -> None:
        self.add({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                  "code": {"coding": [{"system": SNOMED, "code": code}]},
                  "subject": {"reference": f"Patient/{pid}"}, "authoredOn": at,
                  "performer": [{"reference": f"Organization/{clinic}"}]})

    def encounter(self, pid: str, clinic: str | None, start: str, end: str | None = None,
                  kap_type: str | None = None, snomed: str | None = None, status: str = "finished") -> dict:
        coding = [{"system": KAP, "code": kap_type}] if kap_type else [{"system": SNOMED, "code": snomed or "185349003"}]
        enc = {"resourceType": "Encounter", "status": status, "class": {"code": "AMB"},
               "type": [{"coding": coding}], "subject": {"reference": f"Patient/{pid}"},
               "period": {"start": start, **({"end": end} if end else {})}}
        if clinic:
            enc["serviceProvider"] = {"reference": f"Organization/{clinic}"}
        return self.add(enc)

    def dose(self, pid: str, start: str, end: str, encounter: dict | None = None) -> None:
        ma = self.add({"resourceType": "MedicationAdministration", "status": "completed",
                  "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "6130", "display": "ketamine"}]},
                  "subject": {"reference": f"Patient/{pid}"},
                  "effectivePeriod": {"start": start, "end": end},
                  "dosage": {"route": {"coding": [{"system": SNOMED, "code": "47625008"}]},
                             "dose": {"value": 35, "unit": "mg"}}})
        if encounter is not None:
            ma["context"] = {"reference": f"Encounter/{encounter['id']}"}

    def phq9(self, pid: str, at: str, score: int) -> None:
        self.add({"resourceType": "Observation", "status": "final",
                  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                            "code": "survey"}]}],
                  "code": {"coding": [{"system": LOINC, "code": "44261-6"}]},
                  "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": at, "valueInteger": score})

    def decision(self, pid: str, at: str, decision: str) -> None:
        self.add({"resourceType": "Observation", "status": "final",
                  "code": {"coding": [{"system": KAP, "code": "screening-decision"}]},
                  "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": at,
                  "valueCodeableConcept": {"coding": [{"system": KAP, "code": decision}]}})


def _build(tmp_path: Path, export: Export, monkeypatch: pytest.MonkeyPatch | None = None,
           env: dict[str, str] | None = None) -> Settings:
    if monkeypatch is not None:
        monkeypatch.delenv("KAP_TIMEZONE", raising=False)
        monkeypatch.delenv("KAP_CLINIC_TIMEZONES", raising=False)
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
    settings = Settings(home=(tmp_path / "home").resolve()).ensure_dirs()
    summary = step_ingest(export.write(tmp_path / "landing"), settings)
    assert all(f.status == "ingested" for f in summary.files), summary.files
    transform.build(settings)
    return settings


def _rows(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


# --- 1. a missing score counts as a failure ---------------------------------------------------

def test_a_missing_score_is_unknown_not_a_failure(tmp_path, monkeypatch):
    """A: baseline PHQ-9 20 the day before the first dose, never rescored -> no_followup, every
    outcome null (before: is_responder false and pct_change_latest 0.0). B: baseline 20, then 8 two
    weeks after the first dose -> assessed, (8 - 20) / 20 = -60 %, a responder (>= 50 % below)."""
    ex = Export()
    ex.clinic("c1")
    for pid in ("a", "b"):
        ex.patient(pid, "c1")
        ex.referral(pid, "c1", "2025-03-01T09:00:00Z")
        ex.phq9(pid, "2025-03-09T09:00:00Z", 20)
        ex.dose(pid, "2025-03-10T10:00:00Z", "2025-03-10T10:40:00Z")
    ex.phq9("b", "2025-03-24T09:00:00Z", 8)
    settings = _build(tmp_path, ex, monkeypatch)

    rows = {r[0]: r[1:] for r in _rows(settings, """
        select k.id_value, o.outcome_status, o.is_responder, o.is_remitter, o.has_relapse,
               o.pct_change_latest, o.days_to_response, o.durability_days
        from marts.patient_outcomes o
        join restricted.patient_keys k on k.patient_key = o.patient_key and k.id_system = 'fhir'
        where o.instrument = 'phq9'""")}
    assert rows["a"] == ("no_followup", None, None, None, None, None, None)
    assert rows["b"] == ("assessed", True, False, False, -60.0, 14, 0)


# --- 2. a whole EHR history is treated as KAP care --------------------------------------------

def _primary_care_history(ex: Export, pid: str) -> None:
    """Twenty years of an ordinary EHR: a birth encounter, yearly check-ups, a lab order, a
    primary-care PHQ-9 and a condition - none of it KAP care."""
    ex.encounter(pid, "pcp", "1985-04-02T06:10:00Z", "1985-04-04T10:00:00Z", snomed="169836001")  # birth
    for year in range(2005, 2025):
        ex.encounter(pid, "pcp", f"{year}-06-15T15:00:00Z", f"{year}-06-15T15:30:00Z", snomed="185349003")
    ex.referral(pid, "pcp", "2023-02-01T09:00:00Z", code="26604007")  # a blood-count order
    ex.phq9(pid, "2022-06-15T15:10:00Z", 12)
    ex.add({"resourceType": "Condition", "code": {"coding": [{"system": SNOMED, "code": "38341003"}]},
            "subject": {"reference": f"Patient/{pid}"}, "onsetDateTime": "2019-06-15T15:00:00Z"})


def test_a_whole_ehr_history_is_not_kap_care(tmp_path, monkeypatch):
    """k has 20 years of primary care, then a KAP referral on 2025-01-06, a consult and a dose:
    one episode, starting at the referral; h has the same history and no KAP event: no episode.
    No clinic_daily day, therapy session or pathway date before 2025, and no birth date anywhere."""
    ex = Export()
    ex.clinic("c1")
    ex.clinic("pcp")
    for pid in ("k", "h"):
        ex.patient(pid, "pcp")
        _primary_care_history(ex, pid)
    ex.referral("k", "c1", "2025-01-06T09:00:00Z")
    ex.encounter("k", "c1", "2025-01-10T15:00:00Z", "2025-01-10T16:00:00Z", kap_type="consult")
    ex.dose("k", "2025-01-20T10:00:00Z", "2025-01-20T10:40:00Z")
    settings = _build(tmp_path, ex, monkeypatch)

    episodes = _rows(settings, """
        select k.id_value, p.episode_start_at, p.referral_date, p.clinic_id
        from marts.care_pathways p
        join restricted.patient_keys k on k.patient_key = p.patient_key and k.id_system = 'fhir'""")
    assert episodes == [("k", dt.datetime(2025, 1, 6, 9, 0), dt.date(2025, 1, 6), "c1")]
    assert _rows(settings, "select min(activity_date) from marts.clinic_daily") == [(dt.date(2025, 1, 6),)]
    assert _rows(settings, "select count(*) from marts.clinic_daily where clinic_id = 'pcp'") == [(0,)]
    assert _rows(settings, "select session_type, session_date from marts.therapy_sessions") == [
        ("consult", dt.date(2025, 1, 10))]
    # the history stays in the event log
    assert _rows(settings, "select count(*) from raw.events where event_type = 'encounter_other'") == [(42,)]


# --- 3. clinic_daily.active_episodes counts screened-out episodes -----------------------------

def test_screened_out_episodes_are_not_active_in_clinic_daily(tmp_path, monkeypatch):
    """s: referred 01-02, consult 01-03, ineligible 01-04 (screened out, never dosed). t: referred
    01-02, consult 01-03, doses and integration sessions on 01-20 and 01-27. On 01-20 and 01-27 only t is active (before: 2)."""
    ex = Export()
    ex.clinic("c1")
    for pid in ("s", "t"):
        ex.patient(pid, "c1")
        ex.referral(pid, "c1", "2025-01-02T09:00:00Z")
        ex.encounter(pid, "c1", "2025-01-03T15:00:00Z", "2025-01-03T16:00:00Z", kap_type="consult")
    ex.decision("s", "2025-01-04T09:00:00Z", "ineligible")
    ex.decision("t", "2025-01-04T09:00:00Z", "eligible")
    for day in ("2025-01-20", "2025-01-27"):
        ex.dose("t", f"{day}T10:00:00Z", f"{day}T10:40:00Z")
        ex.encounter("t", "c1", f"{day}T15:00:00Z", f"{day}T16:00:00Z", kap_type="integration")
    settings = _build(tmp_path, ex, monkeypatch)

    active = dict(_rows(settings, "select activity_date, active_episodes from marts.clinic_daily"))
    assert active[dt.date(2025, 1, 3)] == 2
    assert active[dt.date(2025, 1, 20)] == 1
    assert active[dt.date(2025, 1, 27)] == 1


# --- 4. day-level measures use the UTC date ---------------------------------------------------

def test_an_evening_session_counts_on_the_clinics_local_day(tmp_path, monkeypatch):
    """Clinic ny sends America/New_York. A dose on Sunday 2025-03-02 at 20:00-05:00 is 01:00 UTC on
    Monday 03-03: dose_date and clinic_daily count it on Sunday 03-02, adherence_weekly in the week
    starting Monday 02-24 (the UTC date would put it in the week of 03-03)."""
    ex = Export()
    ex.clinic("ny", "America/New_York")
    ex.patient("p", "ny")
    ex.referral("p", "ny", "2025-02-20T15:00:00-05:00")
    session = ex.encounter("p", "ny", "2025-03-02T20:00:00-05:00", "2025-03-02T21:30:00-05:00", kap_type="dosing")
    ex.dose("p", "2025-03-02T20:00:00-05:00", "2025-03-02T20:40:00-05:00", session)
    settings = _build(tmp_path, ex, monkeypatch)

    assert _rows(settings, "select start_at, dose_date from marts.dosing_sessions") == [
        (dt.datetime(2025, 3, 3, 1, 0), dt.date(2025, 3, 2))]
    assert _rows(settings, "select activity_date from marts.clinic_daily where dosing_sessions > 0") == [
        (dt.date(2025, 3, 2),)]
    assert _rows(settings, "select week_start from marts.adherence_weekly where doses > 0") == [
        (dt.date(2025, 2, 24),)]
    assert _rows(settings, "select first_dose_date from marts.care_pathways") == [(dt.date(2025, 3, 2),)]


def test_a_per_clinic_setting_gives_the_local_day_when_the_ehr_sends_no_zone(tmp_path, monkeypatch):
    """No extension; KAP_CLINIC_TIMEZONES says la=America/Los_Angeles: 2025-03-05T03:00Z is 19:00
    on 03-04 in Los Angeles (PST, UTC-8)."""
    ex = Export()
    ex.clinic("la")
    ex.patient("p", "la")
    ex.referral("p", "la", "2025-03-01T17:00:00Z")
    ex.dose("p", "2025-03-05T03:00:00Z", "2025-03-05T03:40:00Z")   # no encounter: the patient's clinic
    settings = _build(tmp_path, ex, monkeypatch, {"KAP_CLINIC_TIMEZONES": "la=America/Los_Angeles"})
    assert _rows(settings, "select dose_date from marts.dosing_sessions") == [(dt.date(2025, 3, 4),)]


# --- 5. timestamps without an offset are read as UTC, silently --------------------------------

def test_a_timestamp_without_an_offset_is_read_in_the_clinics_time_zone(tmp_path, monkeypatch):
    """Clinic ny (America/New_York) sends an evening session as 2025-03-04T19:30:00, no offset: it is
    00:30 UTC on 03-05, dated 03-04 at the clinic, and the payload names the zone it was read in
    (the DQ warning landing_events_offset_assumed counts it). Clinic zz sends no zone and there is
    no KAP_TIMEZONE: its offset-less session cannot be placed and is quarantined."""
    ex = Export()
    ex.clinic("ny", "America/New_York")
    ex.clinic("zz")
    ex.patient("p", "ny")
    ex.patient("q", "zz")
    ex.referral("p", "ny", "2025-03-01T10:00:00-05:00")
    ex.referral("q", "zz", "2025-03-01T10:00:00Z")
    ex.encounter("p", "ny", "2025-03-04T19:30:00", "2025-03-04T20:30:00", kap_type="integration")
    ex.encounter("q", "zz", "2025-03-04T19:30:00", "2025-03-04T20:30:00", kap_type="integration")
    settings = _build(tmp_path, ex, monkeypatch)

    assert _rows(settings, "select clinic_id, start_at, session_date from marts.therapy_sessions") == [
        ("ny", dt.datetime(2025, 3, 5, 0, 30), dt.date(2025, 3, 4))]
    assert _rows(settings, """select payload->>'$.time_zone_assumed', payload->>'$.end_at' from raw.events
                              where event_type = 'encounter_integration'""") == [
        ("America/New_York", "2025-03-05T01:30:00Z")]
    quarantined = _rows(settings, "select reason_code, detail from raw.quarantine")
    assert quarantined == [("timestamp_without_offset", "no UTC offset and no time zone for clinic zz")]

    from kap.quality import validate
    run_id = _rows(settings, "select max(run_id) from raw.ingest_files")[0][0]
    outcome = validate(settings, stage="landing", run_id=run_id)
    check = next(r for r in outcome.results if r.check_id == "landing_events_offset_assumed")
    assert (check.status, check.severity, check.rows_failed) == ("failed", "warning", 1)


def test_kap_timezone_places_an_offset_less_time_of_a_clinic_without_a_zone(tmp_path, monkeypatch):
    """With KAP_TIMEZONE=America/Chicago, clinic zz's 2025-03-04T19:30:00 is read as 19:30 CST
    (UTC-6) = 01:30 UTC on 03-05, dated 03-04; nothing is quarantined."""
    ex = Export()
    ex.clinic("zz")
    ex.patient("q", "zz")
    ex.referral("q", "zz", "2025-03-01T10:00:00Z")
    ex.encounter("q", "zz", "2025-03-04T19:30:00", "2025-03-04T20:30:00", kap_type="integration")
    settings = _build(tmp_path, ex, monkeypatch, {"KAP_TIMEZONE": "America/Chicago"})
    assert _rows(settings, "select start_at, session_date from marts.therapy_sessions") == [
        (dt.datetime(2025, 3, 5, 1, 30), dt.date(2025, 3, 4))]
    assert _rows(settings, "select count(*) from raw.quarantine") == [(0,)]


# --- docs/inputs.md: where the ineligibility reason is read ---------------------------------------

def test_the_ineligibility_reason_is_read_from_a_component_value_and_from_the_old_places(tmp_path, monkeypatch):
    """The standard place: a component whose valueCodeableConcept is the SNOMED contraindication
    (69322001 psychotic disorder). Files already sent keep working: interpretation (77386006)."""
    monkeypatch.delenv("KAP_TIMEZONE", raising=False)
    ex = Export()
    ex.clinic("c1")
    ex.patient("p", "c1")
    ex.patient("q", "c1")
    standard = {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": KAP, "code": "screening-decision"}]},
                "subject": {"reference": "Patient/p"}, "effectiveDateTime": "2025-01-04T09:00:00Z",
                "valueCodeableConcept": {"coding": [{"system": KAP, "code": "ineligible"}]},
                "component": [{"code": {"coding": [{"system": KAP, "code": "ineligibility-reason"}]},
                               "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "69322001"}]}}]}
    old = dict(standard, subject={"reference": "Patient/q"}, component=None,
               interpretation=[{"coding": [{"system": SNOMED, "code": "77386006"}]}])
    del old["component"]
    ex.add(standard)
    ex.add(old)
    settings = Settings(home=(tmp_path / "home").resolve()).ensure_dirs()
    step_ingest(ex.write(tmp_path / "landing"), settings)
    assert sorted(_rows(settings, "select payload->>'$.reason_code' from raw.events "
                                  "where event_type = 'screening_decided'")) == [("69322001",), ("77386006",)]


def test_a_changed_time_zone_setting_redates_incrementally_built_doses(tmp_path, monkeypatch):
    """The incremental dose models are rebuilt when the time-zone settings change: clinic la has
    no zone, so the 2025-03-05T03:00Z dose is dated 03-05 (UTC); with KAP_CLINIC_TIMEZONES
    la=America/Los_Angeles the next (incremental) build dates it 03-04 (19:00 PST) in
    int_dose_series and dosing_sessions too, as a full rebuild would."""
    ex = Export()
    ex.clinic("la")
    ex.patient("p", "la")
    ex.referral("p", "la", "2025-03-01T17:00:00Z")
    session = ex.encounter("p", "la", "2025-03-05T03:00:00Z", "2025-03-05T04:00:00Z", kap_type="dosing")
    ex.dose("p", "2025-03-05T03:00:00Z", "2025-03-05T03:40:00Z", session)
    settings = _build(tmp_path, ex, monkeypatch)
    assert _rows(settings, "select dose_date from marts.dosing_sessions") == [(dt.date(2025, 3, 5),)]

    monkeypatch.setenv("KAP_CLINIC_TIMEZONES", "la=America/Los_Angeles")
    transform.build(settings)
    assert _rows(settings, "select dose_date from marts.dosing_sessions") == [(dt.date(2025, 3, 4),)]
    assert _rows(settings, "select dose_date from intermediate.int_dose_series") == [(dt.date(2025, 3, 4),)]
