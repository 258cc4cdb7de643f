"""The sample-clinic generator (`kap generate`): determinism, the landing spec, realism, faults."""
from __future__ import annotations

import base64
import collections
import csv
import datetime as dt
import json
import re
from pathlib import Path

import pytest

from kap.settings import PROJECT_ROOT
from kap.generator import generate
from ingest.reasons import RECORD_REASONS

SMALL = {"patients": 60, "days": 120, "seed": 11}
CORE_TYPES = ("Patient", "Organization", "Location", "Practitioner", "PractitionerRole", "ServiceRequest", "Appointment", "Encounter",
              "EpisodeOfCare", "Condition", "Observation", "MedicationAdministration", "AdverseEvent", "Consent",
              "QuestionnaireResponse", "DocumentReference")
ROUTES = {"47625008": "IV", "78421000": "IM", "46713006": "IN", "37161004": "SL", "26643006": "PO"}
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")


# --- fixtures and readers ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gen") / "clean"
    return out, generate(out, **SMALL)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gen") / "faulty"
    return out, generate(out, **SMALL, fault_rate=0.05)


@pytest.fixture(scope="module")
def clinic300(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "c300"
    generate(out, patients=300, days=365, seed=5)
    return out


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def resources(root: Path, rtype: str, part: str = "000") -> list[dict]:
    path = root / "ehr" / f"{rtype}.{part}.ndjson"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def dosing_rows(root: Path) -> list[dict]:
    with (root / "dosing" / "dosing_log.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def notes(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "notes" / "therapy_notes.jsonl").read_text().splitlines()]


def mrn_of(patient: dict) -> str:
    return next(i["value"] for i in patient["identifier"] if i["type"]["coding"][0]["code"] == "MR")


def patient_id(ref: dict, by_mrn: dict[str, str]) -> str:
    r = ref["reference"]
    return r.split("/", 1)[1] if r.startswith("Patient/") else by_mrn[r.split("|", 1)[1]]


def doses_by_patient(root: Path) -> dict[str, dict[str, str]]:
    """Dosing days per patient, from the EHR and the dosing log together (one dose a day at most)."""
    by_mrn = {mrn_of(p): p["id"] for p in resources(root, "Patient")}
    out: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for ma in resources(root, "MedicationAdministration"):
        if ma["status"] == "completed":
            start = ma.get("effectiveDateTime") or ma["effectivePeriod"]["start"]
            out[patient_id(ma["subject"], by_mrn)][start[:10]] = ROUTES[ma["dosage"]["route"]["coding"][0]["code"]]
    for row in dosing_rows(root):
        out[by_mrn[row["patient_mrn"]]][row["start_at"][:10]] = row["route"]
    return out


# --- determinism --------------------------------------------------------------------------------------
def test_same_seed_writes_identical_bytes(clean: tuple[Path, dict], tmp_path: Path) -> None:
    root, summary = clean
    again = generate(tmp_path / "again", **SMALL)
    assert files_of(tmp_path / "again") == files_of(root)
    assert {k: v for k, v in again.items() if k != "out_dir"} == {k: v for k, v in summary.items() if k != "out_dir"}


def test_same_seed_with_faults_writes_identical_bytes(faulty: tuple[Path, dict], tmp_path: Path) -> None:
    generate(tmp_path / "again", **SMALL, fault_rate=0.05)
    assert files_of(tmp_path / "again") == files_of(faulty[0])


def test_different_seed_writes_different_data(clean: tuple[Path, dict], tmp_path: Path) -> None:
    generate(tmp_path / "other", **{**SMALL, "seed": 12})
    a, b = files_of(clean[0]), files_of(tmp_path / "other")
    assert a["ehr/Patient.000.ndjson"] != b["ehr/Patient.000.ndjson"]
    assert a["dosing/dosing_log.csv"] != b["dosing/dosing_log.csv"]


def test_faults_leave_the_clean_simulation_unchanged(clean: tuple[Path, dict], faulty: tuple[Path, dict]) -> None:
    # patients are never corrupted, so their file must be byte-identical whatever the fault rate
    assert (clean[0] / "ehr/Patient.000.ndjson").read_bytes() == (faulty[0] / "ehr/Patient.000.ndjson").read_bytes()
    assert clean[1]["doses"] == faulty[1]["doses"]


def test_progress_is_reported_for_every_patient(tmp_path: Path) -> None:
    seen: list[int] = []
    generate(tmp_path / "p", patients=120, days=30, seed=1, progress=seen.append)
    assert sum(seen) == 120 and len(seen) >= 2


def test_rerun_in_the_same_folder_removes_stale_reexports(tmp_path: Path) -> None:
    generate(tmp_path / "x", patients=30, days=60, seed=3, fault_rate=0.05)
    assert (tmp_path / "x/dosing/dosing_log_amendments.csv").exists()
    generate(tmp_path / "x", patients=30, days=60, seed=3)
    assert not list((tmp_path / "x").rglob("*.001.ndjson"))
    assert not (tmp_path / "x/dosing/dosing_log_amendments.csv").exists()


def test_large_bulk_files_are_split_into_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kap.generator import core

    whole = tmp_path / "whole"
    generate(whole, patients=30, days=60, seed=3)
    monkeypatch.setattr(core, "BULK_FILE_RESOURCES", 40)
    split = tmp_path / "split"
    summary = generate(split, patients=30, days=60, seed=3)
    parts = sorted((split / "ehr").glob("Observation.000*.ndjson"),
                   key=lambda p: int(p.name.split(".part")[1].split(".")[0]) if ".part" in p.name else 1)
    assert [p.name for p in parts[:3]] == ["Observation.000.ndjson", "Observation.000.part2.ndjson",
                                           "Observation.000.part3.ndjson"]
    assert all(summary["files"][f"ehr/{p.name}"] == 40 for p in parts[:-1])
    # the parts, in order, are the one file byte for byte; a rerun unsplit removes them
    assert b"".join(p.read_bytes() for p in parts) == (whole / "ehr/Observation.000.ndjson").read_bytes()
    monkeypatch.undo()
    generate(split, patients=30, days=60, seed=3)
    assert not list((split / "ehr").glob("*.part*.ndjson"))


# --- the landing spec ---------------------------------------------------------------------------------
def test_writes_the_three_folders_and_every_resource_file(clean: tuple[Path, dict]) -> None:
    root, summary = clean
    for rtype in CORE_TYPES:
        assert (root / "ehr" / f"{rtype}.000.ndjson").stat().st_size > 0, rtype
    assert (root / "dosing/dosing_log.csv").exists()
    assert (root / "notes/therapy_notes.jsonl").exists()
    assert not list(root.rglob("*.001.ndjson")) and not list(root.rglob("*amendments*"))
    # the summary's per-file counts are the files' record counts
    for rel, n in summary["files"].items():
        lines = (root / rel).read_bytes().splitlines()
        assert len(lines) - (1 if rel.endswith(".csv") else 0) == n, rel
    assert summary["records"] == sum(summary["files"].values())
    assert summary["patients"] == SMALL["patients"] and summary["doses"] > 0 and summary["episodes"] > 0


def test_every_ndjson_line_is_a_versioned_fhir_resource(clean: tuple[Path, dict]) -> None:
    root = clean[0]
    for path in sorted((root / "ehr").glob("*.ndjson")):
        rtype = path.name.split(".")[0]
        ids = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            res = json.loads(line)
            assert isinstance(res, dict) and res["resourceType"] == rtype
            assert res["id"] not in ids
            ids.add(res["id"])
            assert res["meta"]["versionId"].isdigit() and STAMP.match(res["meta"]["lastUpdated"])


def test_dosing_csv_header_is_exactly_the_input_spec(clean: tuple[Path, dict]) -> None:
    spec = (PROJECT_ROOT / "docs/inputs.md").read_text()
    table = spec.split("## Dosing log", 1)[1].split("## Therapy-note export", 1)[0]
    expected: list[str] = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("column", "---") and not cells[0].startswith("-"):
            expected += [c.strip() for c in cells[0].split(",")]
    header = (clean[0] / "dosing/dosing_log.csv").read_text().splitlines()[0]
    assert header.split(",") == expected


def test_timestamps_carry_an_offset_and_required_values_are_present(clean: tuple[Path, dict]) -> None:
    root = clean[0]
    for row in dosing_rows(root):
        for col in ("dosing_id", "clinic_id", "patient_mrn", "route", "drug", "dose_mg", "start_at",
                    "clinician_id", "recorded_at"):
            assert row[col], col
        assert row["route"] in ROUTES.values() and row["drug"] in ("ketamine", "esketamine")
        for col in ("start_at", "end_at", "monitoring_end_at", "recorded_at"):
            assert not row[col] or STAMP.match(row[col]), row[col]
        assert row["monitoring_end_at"] >= row["start_at"]
    for note in notes(root):
        for key in ("note_id", "patient_mrn", "clinic_id", "therapist_id", "session_type", "session_start",
                    "session_end", "signed_at"):
            assert note[key], key
        assert note["session_type"] in ("consult", "preparation", "integration", "psychotherapy")
        assert STAMP.match(note["session_start"]) and note["session_end"] >= note["session_start"]
    for obs in resources(root, "Observation"):
        assert STAMP.match(obs["effectiveDateTime"])


def test_patients_carry_direct_identifiers_for_privacy_tests(clinic300: Path) -> None:
    patients = resources(clinic300, "Patient")
    mrns = [mrn_of(p) for p in patients]
    assert len(set(mrns)) == len(patients)
    for p in patients:
        systems = {i["system"] for i in p["identifier"]}
        assert {"urn:kap:mrn", "http://hl7.org/fhir/sid/us-ssn"} <= systems
        assert p["name"][0]["family"] and p["name"][0]["given"]
        assert {t["system"] for t in p["telecom"]} == {"phone", "email"}
        assert re.match(r"^\d{5}$", p["address"][0]["postalCode"]) and p["address"][0]["line"]
    ages = [(dt.date(2025, 1, 6) - dt.date.fromisoformat(p["birthDate"])).days // 365 for p in patients]
    assert max(ages) > 89 and min(ages) >= 18
    known = set(mrns)
    assert {r["patient_mrn"] for r in dosing_rows(clinic300)} <= known
    assert {n["patient_mrn"] for n in notes(clinic300)} <= known
    # note text names the patient, the way real notes do
    given = {mrn_of(p): p["name"][0]["given"][0] for p in patients}
    attended = [n for n in notes(clinic300) if n["attended"]]
    assert all(given[n["patient_mrn"]] in n["text"] for n in attended)
    docs = resources(clinic300, "DocumentReference")
    assert docs and all(b"MRN" in base64.b64decode(d["content"][0]["attachment"]["data"]) for d in docs)


def test_conditional_references_resolve_to_known_patients(clinic300: Path) -> None:
    known = {mrn_of(p) for p in resources(clinic300, "Patient")}
    conditional = [r["subject"]["reference"] for r in resources(clinic300, "Observation")
                   if r["subject"]["reference"].startswith("Patient?")]
    assert conditional
    assert all(ref.startswith("Patient?identifier=urn:kap:mrn|") and ref.split("|")[1] in known for ref in conditional)


# --- realism ------------------------------------------------------------------------------------------
def test_route_mix_and_early_dropout_follow_the_domain(clinic300: Path) -> None:
    per_patient = doses_by_patient(clinic300)
    assert len(per_patient) > 150
    first_route = collections.Counter(days[min(days)] for days in per_patient.values())
    share = {r: n / len(per_patient) for r, n in first_route.items()}
    assert 0.30 <= share["IV"] <= 0.50
    assert 0.17 <= share["IN"] <= 0.33
    assert 0.17 <= share.get("SL", 0) + share.get("PO", 0) <= 0.33
    assert 0.04 <= share["IM"] <= 0.17
    single = sum(1 for days in per_patient.values() if len(days) == 1) / len(per_patient)
    assert 0.12 <= single <= 0.30   # ORKA-2: about 20 % stop after the first dose
    # about half the IV courses reach 6 infusions within 21 days
    iv = [sorted(days) for days in per_patient.values() if days[min(days)] == "IV"]
    complete = sum(1 for d in iv
                   if len(d) >= 6 and (dt.date.fromisoformat(d[5]) - dt.date.fromisoformat(d[0])).days <= 21)
    assert 0.3 <= complete / len(iv) <= 0.7


def test_doses_are_in_the_ehr_the_log_or_both(clinic300: Path) -> None:
    by_mrn = {mrn_of(p): p["id"] for p in resources(clinic300, "Patient")}
    ehr = {(patient_id(m["subject"], by_mrn), (m.get("effectiveDateTime") or m["effectivePeriod"]["start"])[:10])
           for m in resources(clinic300, "MedicationAdministration") if m["status"] == "completed"}
    log = {(by_mrn[r["patient_mrn"]], r["start_at"][:10]) for r in dosing_rows(clinic300)}
    assert ehr & log and ehr - log and log - ehr
    assert any(m["status"] == "not-done" for m in resources(clinic300, "MedicationAdministration"))


def test_dosing_protocols_per_route(clinic300: Path) -> None:
    rows = dosing_rows(clinic300)
    iv = [r for r in rows if r["route"] == "IV"]
    assert sum(1 for r in iv if abs(float(r["dose_mg_per_kg"]) - 0.5) < 0.002) > 0.7 * len(iv)
    esk = [r for r in rows if r["drug"] == "esketamine"]
    esk_doses = {float(r["dose_mg"]) for r in esk}
    assert esk_doses <= {28.0, 56.0, 84.0} and {56.0, 84.0} <= esk_doses
    minutes = [(dt.datetime.fromisoformat(r["monitoring_end_at"])
                - dt.datetime.fromisoformat(r["start_at"])).total_seconds() / 60 for r in esk]
    assert 0.8 <= sum(m >= 120 for m in minutes) / len(minutes) < 1.0
    rems = [r for r in esk if r["rems_form_submitted_on"]]
    late = [r for r in rems if (dt.date.fromisoformat(r["rems_form_submitted_on"])
                                - dt.date.fromisoformat(r["start_at"][:10])).days > 7]
    assert len(rems) < len(esk) and 0 < len(late) < 0.25 * len(rems)
    assert all(r["rems_form_submitted_on"] == "" for r in rows if r["drug"] == "ketamine")
    # blood pressure rises at 40 min; some sessions by >= 40 mmHg systolic
    bp = [r for r in rows if r["bp_40min_systolic"] and r["bp_pre_systolic"]]
    rise = [int(r["bp_40min_systolic"]) - int(r["bp_pre_systolic"]) for r in bp]
    assert sum(rise) / len(rise) > 5 and 0.05 <= sum(x >= 40 for x in rise) / len(rise) <= 0.25
    codes = {c["code"] for e in resources(clinic300, "Encounter") for t in e["type"] for c in t["coding"]}
    assert {"G2082", "G2083", "90791", "96365", "dosing", "integration", "preparation", "consult"} <= codes


def test_appointments_show_noshows_and_late_cancels(clinic300: Path) -> None:
    appts = resources(clinic300, "Appointment")
    status = collections.Counter(a["status"] for a in appts)
    assert 0.02 < status["noshow"] / len(appts) < 0.1 and 0.02 < status["cancelled"] / len(appts) < 0.12
    late = early = with_extension = 0
    for a in (a for a in appts if a["status"] == "cancelled"):
        ext = [e["valueDateTime"] for e in a.get("extension", []) if e["url"].endswith("cancellationDate")]
        with_extension += bool(ext)
        when = dt.datetime.fromisoformat(ext[0] if ext else a["meta"]["lastUpdated"])
        hours = (dt.datetime.fromisoformat(a["start"]) - when).total_seconds() / 3600
        assert hours > 0
        late, early = late + (hours < 24), early + (hours >= 24)
    assert late and early and with_extension


def test_scores_show_responders_remitters_and_non_responders(clinic300: Path) -> None:
    by_mrn = {mrn_of(p): p["id"] for p in resources(clinic300, "Patient")}
    series: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    for o in resources(clinic300, "Observation"):
        if o["code"]["coding"][0]["code"] == "44261-6":
            value = o.get("valueInteger", o.get("valueQuantity", {}).get("value"))
            assert 0 <= value <= 27
            series[patient_id(o["subject"], by_mrn)].append((o["effectiveDateTime"], value))
    outcomes = collections.Counter()
    for points in series.values():
        points.sort()
        if len(points) < 2:
            continue
        base, later = points[0][1], [v for _, v in points[1:]]
        outcomes["remit"] += min(later) < 5
        outcomes["respond"] += min(later) <= base / 2
        outcomes["none"] += min(later) > base * 0.75
    assert outcomes["remit"] >= 10 and outcomes["respond"] >= 20 and outcomes["none"] >= 10
    ineligible = [o for o in resources(clinic300, "Observation")
                  if o.get("valueCodeableConcept", {}).get("coding", [{}])[0].get("code") == "ineligible"]
    assert 0.03 <= len(ineligible) / len(resources(clinic300, "Patient")) <= 0.14


def test_integration_sessions_mostly_follow_doses_within_72_hours(clinic300: Path) -> None:
    by_patient: dict[str, list[tuple[dt.datetime, str]]] = collections.defaultdict(list)
    for e in resources(clinic300, "Encounter"):
        kinds = {c["code"] for t in e["type"] for c in t["coding"]}
        kind = ("dosing" if kinds & {"dosing", "G2082", "G2083", "96365"}
                else "integration" if "integration" in kinds else None)
        if kind:
            by_patient[e["subject"]["reference"]].append((dt.datetime.fromisoformat(e["period"]["start"]), kind))
    gaps = []
    for events in by_patient.values():
        events.sort()
        for (t1, k1), (t2, k2) in zip(events, events[1:]):
            if k1 == "dosing" and k2 == "integration":
                gaps.append((t2 - t1).total_seconds() / 3600)
    assert gaps
    within = sum(g <= 72 for g in gaps) / len(gaps)
    assert 0.8 <= within < 1.0
    assert sum(g <= 30 for g in gaps) / len(gaps) > 0.6


def test_every_practitioner_has_a_role_coded_in_a_standard_or_the_local_system(clinic300: Path) -> None:
    practitioners = {p["id"] for p in resources(clinic300, "Practitioner")}
    roles = resources(clinic300, "PractitionerRole")
    assert {r["practitioner"]["reference"].split("/", 1)[1] for r in roles} == practitioners
    systems = collections.Counter(c["system"] for r in roles for cc in r.get("code", []) + r.get("specialty", [])
                                  for c in cc["coding"])
    assert {"http://snomed.info/sct", "http://nucc.org/provider-taxonomy",
            "http://kap-pipeline.example/fhir/CodeSystem/kap"} <= set(systems)
    assert all(r.get("code") or r.get("specialty") for r in roles)


def test_patients_keep_a_usual_therapist_with_some_switches(clinic300: Path) -> None:
    """Each patient's preparation, integration and psychotherapy sessions (Encounter participants)
    are mostly with one therapist; a minority see a second one (leave, reassignment, cover)."""
    by_patient: dict[str, list[str]] = collections.defaultdict(list)
    for e in resources(clinic300, "Encounter"):
        kinds = {c["code"] for t in e["type"] for c in t["coding"]}
        if kinds & {"preparation", "integration", "psychotherapy"} and e["status"] == "finished":
            who = e["participant"][0]["individual"]["reference"]
            assert who.startswith("Practitioner/th-")
            by_patient[e["subject"]["reference"]].append(who)
    upc = [collections.Counter(ws).most_common(1)[0][1] / len(ws) for ws in by_patient.values() if len(ws) >= 2]
    assert len(upc) > 100
    switched = sum(u < 1 for u in upc) / len(upc)
    assert 0.1 <= switched <= 0.6
    assert sum(u >= 0.75 for u in upc) / len(upc) >= 0.6


def test_dosing_sessions_are_supervised_by_nurses_or_prescribers(clinic300: Path) -> None:
    clinicians = collections.Counter(row["clinician_id"].split("-")[0] for row in dosing_rows(clinic300))
    assert set(clinicians) == {"rn", "pr"} and clinicians["rn"] > clinicians["pr"]


# --- faults ------------------------------------------------------------------------------------------
def test_fault_rate_produces_every_record_reason_code(faulty: tuple[Path, dict]) -> None:
    assert set(faulty[1]["faults_injected"]) == set(RECORD_REASONS)


def test_fault_rate_writes_reexports_with_corrections_and_retractions(faulty: tuple[Path, dict]) -> None:
    root = faulty[0]
    obs_v2 = resources(root, "Observation", "001")
    assert obs_v2 and all(int(o["meta"]["versionId"]) >= 1 for o in obs_v2)
    assert any(o.get("status") == "entered-in-error" for p in root.glob("ehr/*.001.ndjson")
               for o in resources(root, p.name.split(".")[0], "001"))
    assert any(o["status"] == "amended" for o in obs_v2)
    with (root / "dosing/dosing_log_amendments.csv").open(newline="") as fh:
        amended = list(csv.DictReader(fh))
    header = (root / "dosing/dosing_log.csv").read_text().splitlines()[0]
    assert (root / "dosing/dosing_log_amendments.csv").read_text().splitlines()[0] == header
    assert any(r["is_void"] == "true" and r["amended_at"] for r in amended)
    assert any(r["is_void"] == "false" and r["amended_at"] for r in amended)
    note_v2 = [json.loads(x) for x in (root / "notes/therapy_notes_amendments.jsonl").read_text().splitlines()]
    assert {"amended", "entered-in-error"} <= {n["status"] for n in note_v2}
    assert all(n.get("amended_at") is None or n["amended_at"] > n["signed_at"] for n in note_v2)


def test_faults_are_really_bad_records(faulty: tuple[Path, dict]) -> None:
    root = faulty[0]
    found = collections.Counter()
    for path in sorted((root / "ehr").glob("*.000.ndjson")):
        lines = path.read_bytes().splitlines()
        found["duplicate_in_file"] += len(lines) - len(set(lines))
        for raw in lines:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                found["invalid_encoding"] += 1
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError:
                found["unparseable"] += 1
                continue
            if not isinstance(obj, dict):
                found["not_an_object"] += 1
            elif "resourceType" not in obj:
                found["missing_resource_type"] += 1
            elif "dataAbsentReason" in obj:
                found["missing_value"] += 1
            elif "2099-" in text:
                found["future_time"] += 1
    assert all(found[k] for k in ("duplicate_in_file", "invalid_encoding", "unparseable", "not_an_object",
                                  "missing_resource_type", "missing_value", "future_time")), found
    # conflicting duplicates: the same id and version re-sent with other content
    first = {(o["id"], o["meta"]["versionId"]): o for o in readable(root / "ehr/Observation.000.ndjson")}
    conflicts = [o for o in resources(root, "Observation", "001")
                 if (o["id"], o["meta"]["versionId"]) in first and first[(o["id"], o["meta"]["versionId"])] != o]
    assert conflicts
    # ... while the bulk of every file stays valid
    ok = len(readable(root / "ehr/Observation.000.ndjson"))
    assert ok > 0.85 * faulty[1]["files"]["ehr/Observation.000.ndjson"]


def readable(path: Path) -> list[dict]:
    """The lines of an NDJSON file that are well-formed FHIR resources."""
    out = []
    for raw in path.read_bytes().splitlines():
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(obj, dict) and "resourceType" in obj and "id" in obj and "meta" in obj:
            out.append(obj)
    return out


def test_invalid_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path / "x", patients=0)
    with pytest.raises(ValueError):
        generate(tmp_path / "x", fault_rate=1.5)
