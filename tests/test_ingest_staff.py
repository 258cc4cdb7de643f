"""Staff from the EHR: Practitioner and PractitionerRole become staff events with an id and a role.

The role comes from standard codes where they exist (SNOMED CT occupations, NUCC provider taxonomy,
the HL7 practitioner-role code system), a local code, or - for staff without a coded role - the
Practitioner's qualification. Names, telecom and addresses of staff are never read.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

from kap.pipeline import step_ingest
from kap.settings import Settings

SNOMED = "http://snomed.info/sct"
NUCC = "http://nucc.org/provider-taxonomy"
KAP = "http://kap-pipeline.example/fhir/CodeSystem/kap"
NPI = "http://hl7.org/fhir/sid/us-npi"


def _role(rid: str, practitioner: dict | None, *codes: tuple[str, str], field: str = "code", **extra) -> dict:
    res = {"resourceType": "PractitionerRole", "id": rid, **extra}
    if practitioner is not None:
        res["practitioner"] = practitioner
    if codes:
        res[field] = [{"coding": [{"system": s, "code": c}]} for s, c in codes]
    return res


PRACTITIONERS = [
    {"resourceType": "Practitioner", "id": "pr-1", "identifier": [{"system": NPI, "value": "1234567893"}],
     "name": [{"family": "Quillfeather", "given": ["Ottoline"]}], "telecom": [{"system": "phone", "value": "555-0100"}],
     "qualification": [{"code": {"text": "M.D."}}]},
    {"resourceType": "Practitioner", "id": "th-1", "name": [{"family": "Brindlecombe"}],
     "qualification": [{"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0360", "code": "PHD"}]}}]},
    {"resourceType": "Practitioner", "id": "x-1", "name": [{"family": "Nobody"}]},
]
ROLES = [
    _role("r-psychiatrist", {"reference": "Practitioner/pr-1"}, (SNOMED, "80584001"),
          organization={"reference": "Organization/clinic-01"}),
    _role("r-nurse", {"reference": "Practitioner/n-1"}, (SNOMED, "224535009")),
    _role("r-psychologist", {"reference": f"Practitioner?identifier={NPI}|1234567893"}, (NUCC, "103TC0700X"),
          field="specialty"),
    _role("r-crna", {"reference": "Practitioner/n-2"}, (NUCC, "367500000X")),
    _role("r-np", {"reference": "Practitioner/n-3"}, (NUCC, "363LP0808X")),
    _role("r-local", {"identifier": {"value": "th-9"}}, (KAP, "therapist"), period={"start": "2025-01-01"}),
    _role("r-doctor", {"reference": "Practitioner/d-1"}, ("http://terminology.hl7.org/CodeSystem/practitioner-role", "doctor")),
    _role("r-unmapped", {"reference": "Practitioner/u-1"}, ("urn:local", "receptionist")),
    _role("r-none", {"reference": "Practitioner/u-2"}),
    _role("r-no-practitioner", None, (SNOMED, "80584001")),
]


def _ingest(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    ehr = tmp_path / "landing" / "ehr"
    ehr.mkdir(parents=True)
    for name, rows in (("Practitioner", PRACTITIONERS), ("PractitionerRole", ROLES)):
        (ehr / f"{name}.000.ndjson").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    s = Settings.from_env(tmp_path / "home")
    assert step_ingest(tmp_path / "landing", s).ok
    return duckdb.connect(str(s.warehouse), read_only=True)


def test_practitioner_roles_map_to_four_roles_by_standard_then_local_codes(tmp_path):
    con = _ingest(tmp_path)
    got = {r[0]: r[1:] for r in con.execute("""
        SELECT payload->>'$.role_id', payload->>'$.staff_ref', payload->>'$.role', payload->>'$.role_source'
        FROM raw.events WHERE event_type = 'staff_role_recorded'""").fetchall()}
    assert got == {
        "r-psychiatrist": ("pr-1", "prescriber", "snomed"),
        "r-nurse": ("n-1", "dosing_clinician", "snomed"),
        "r-psychologist": ("us-npi|1234567893", "therapist", "nucc"),   # conditional reference, resolved in dbt
        "r-crna": ("n-2", "dosing_clinician", "nucc"),
        "r-np": ("n-3", "prescriber", "nucc"),
        "r-local": ("th-9", "therapist", "local"),
        "r-doctor": ("d-1", "prescriber", "hl7"),
        "r-unmapped": ("u-1", "other", "unmapped"),
        "r-none": ("u-2", "other", "none"),
    }
    assert con.execute("SELECT reason_code, detail FROM raw.quarantine").fetchall() == [
        ("missing_required_field", "practitioner")]


def test_practitioner_keeps_id_identifier_and_qualification_role_never_the_name(tmp_path):
    con = _ingest(tmp_path)
    rows = con.execute("""SELECT payload->>'$.staff_id', payload->>'$.qualification_role', payload::VARCHAR,
                                 patient_key
                          FROM raw.events WHERE event_type = 'staff_registered' ORDER BY 1""").fetchall()
    assert [r[:2] for r in rows] == [("pr-1", "prescriber"), ("th-1", "therapist"), ("x-1", None)]
    assert all(r[3] is None for r in rows)    # staff are not patients
    text = " ".join(r[2] for r in rows)
    for name in ("Quillfeather", "Ottoline", "Brindlecombe", "Nobody", "555-0100"):
        assert name not in text
    assert f"{NPI}|1234567893" in rows[0][2]   # kept in the restricted zone to resolve references
