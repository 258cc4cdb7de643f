"""Fault injection: bad records of every record-level reason code, and later re-exports.

With rate F, about F of the patient records of each source is made bad in one way (picked among the
kinds that fit the record); the first applicable records of a source take each kind once, so every
reason code in `ingest/reasons.py` RECORD_REASONS shows up whenever F > 0. Re-exports (a later file
per affected type) carry corrected versions and retractions, including fixed copies of some bad
records, the way a clinic re-sends what was rejected.

The fault stream has its own RNG, so the clean part of the data does not depend on F.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass

from .common import DATA_ABSENT, LOINC, MRN_SYSTEM, UCUM, concept, mrn_for
from .dosing import CSV_COLUMNS

EHR_KINDS = ("unparseable", "invalid_encoding", "not_an_object", "missing_resource_type",
             "missing_required_field", "wrong_type", "invalid_code", "missing_value", "unknown_instrument",
             "out_of_range", "unknown_patient", "future_time", "before_birth", "end_before_start",
             "conflicting_duplicate", "duplicate_in_file", "recorded_after_ingest", "superseded_in_file")
DOSING_KINDS = ("unparseable", "missing_required_field", "wrong_type", "invalid_code", "out_of_range",
                "unknown_patient", "future_time", "before_birth", "end_before_start", "conflicting_duplicate",
                "duplicate_in_file", "timestamp_without_offset", "invalid_identifier", "unknown_clinic")
NOTE_KINDS = ("unparseable", "invalid_encoding", "not_an_object", "missing_required_field", "wrong_type",
              "invalid_code", "unknown_patient", "future_time", "before_birth", "end_before_start",
              "conflicting_duplicate", "duplicate_in_file", "unknown_clinic")
_DUP_KINDS = ("conflicting_duplicate", "duplicate_in_file")

# Resource types that may be made bad: clinical records. Patients, clinics and staff stay clean so one
# fault does not cascade into hundreds of unknown-patient rejections.
_TIME_PATHS = {
    "ServiceRequest": ("authoredOn",),
    "Appointment": ("start", "end"),
    "Encounter": ("period.start", "period.end"),
    "EpisodeOfCare": ("period.start", "period.end"),
    "Condition": ("recordedDate", "onsetDateTime"),
    "Observation": ("effectiveDateTime",),
    "MedicationAdministration": ("effectiveDateTime", "effectivePeriod.start", "effectivePeriod.end"),
    "AdverseEvent": ("date", "recordedDate"),
    "Consent": ("dateTime", "provision.period.start"),
    "QuestionnaireResponse": ("authored",),
    "DocumentReference": ("date", "context.period.start", "context.period.end"),
}
_REQUIRED = {
    "ServiceRequest": ("subject", "authoredOn"),
    "Appointment": ("status", "start", "participant"),
    "Encounter": ("status", "subject", "period"),
    "EpisodeOfCare": ("status", "patient", "period"),
    "Condition": ("subject", "code"),
    "Observation": ("status", "subject", "code", "effectiveDateTime"),
    "MedicationAdministration": ("status", "subject", "medicationCodeableConcept"),
    "AdverseEvent": ("subject", "date", "event"),
    "Consent": ("patient", "status"),
    "QuestionnaireResponse": ("subject", "authored"),
    "DocumentReference": ("subject",),
}
_BAD_STATUS = {"Appointment": "showed", "Encounter": "done", "MedicationAdministration": "given",
               "Observation": "complete", "EpisodeOfCare": "open", "ServiceRequest": "sent", "Consent": "signed",
               "QuestionnaireResponse": "done", "DocumentReference": "final"}
_PERIODS = {"Encounter": "period", "EpisodeOfCare": "period", "MedicationAdministration": "effectivePeriod",
            "DocumentReference": "context.period"}
# out-of-range values per Observation code
_ABSURD = {"44261-6": 28, "70274-6": 25, "101698-9": 96, "55758-7": 9, "cadss": 140, "cadss-6": 31, "moaas": 7,
           "8867-4": 400, "59408-5": 140, "29463-7": 999}
_RETRACTABLE = ("Observation", "MedicationAdministration", "Appointment", "Encounter")
_CORRECTABLE = ("Observation", "MedicationAdministration", "Appointment", "Encounter", "Condition", "Patient")
_COL = {c: i for i, c in enumerate(CSV_COLUMNS)}
_NOTE_REQUIRED = ("note_id", "patient_mrn", "clinic_id", "therapist_id", "session_type", "session_start",
                  "session_end", "signed_at")


_CLEAN_HEAD = 5


@dataclass
class RecordContext:
    birth_year: int


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode  # built once: it is hot


def dumps(obj: object) -> bytes:
    return _ENCODE(obj).encode("utf-8")


def _get(obj: dict, path: str) -> object:
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _set(obj: dict, path: str, value: object) -> None:
    *head, last = path.split(".")
    for part in head:
        obj = obj[part]
    obj[last] = value


def _with_year(stamp: str, year: int) -> str:
    rest = stamp[4:]
    if rest.startswith("-02-29"):
        rest = "-02-28" + rest[6:]
    return f"{year:04d}{rest}"


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _fmt_like(when: dt.datetime, original: str) -> str:
    out = when.isoformat(timespec="seconds")
    return out.replace("+00:00", "Z") if original.endswith("Z") else out


def _without_offset(stamp: str) -> str:
    """`2025-03-04T19:30:00-08:00` -> `2025-03-04T19:30:00` (the wall clock, no offset)."""
    return stamp[:-1] if stamp.endswith("Z") else stamp[:-6] if stamp[-6:-5] in "+-" and stamp[-3:-2] == ":" else stamp


def _us_style(stamp: str) -> str:
    """The same moment as a US-style local string, which is not ISO 8601 (wrong_type)."""
    when = _parse(stamp)
    return f"{when.month}/{when.day}/{when.year} {when:%I:%M %p}"


class FaultInjector:
    def __init__(self, rate: float, seed: int, patients: int, cutoff: dt.datetime) -> None:
        self.rate = rate
        self.rng = random.Random(f"kap:{seed}:faults")
        self.cutoff = cutoff
        self.counts: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self.pending = {"ehr": list(EHR_KINDS), "dosing": list(DOSING_KINDS), "notes": list(NOTE_KINDS)}
        self.reexports: dict[str, list[bytes]] = defaultdict(list)   # relative path -> lines
        self._voided_a_row = False   # a dosing amendment has voided its row yet
        self._unknown = patients + 1000   # indices past the last patient give MRNs nobody has
        self._csv_buf = io.StringIO()
        self._csv = csv.writer(self._csv_buf, lineterminator="\n")

    # --- shared --------------------------------------------------------------------------------
    def _choose(self, source: str, applicable: list[str]) -> str | None:
        # the first records of a file stay clean, so readers that sniff the head see a good sample
        self.seen[source] += 1
        if self.seen[source] <= _CLEAN_HEAD:
            return None
        pending = self.pending[source]
        for kind in pending:
            if kind in applicable:
                pending.remove(kind)
                return kind
        if self.rng.random() < self.rate:
            return self.rng.choice(applicable)
        return None

    def _later(self, stamp: str) -> str:
        """A knowledge time after `stamp` for a correction: hours to weeks later, near the cutoff at most."""
        when = _parse(stamp)
        later = when + dt.timedelta(minutes=self.rng.randint(90, 20 * 24 * 60))
        cap = self.cutoff.replace(tzinfo=when.tzinfo) + dt.timedelta(days=2)
        if later > cap:
            later = max(cap, when + dt.timedelta(hours=1))
        return _fmt_like(later, stamp)

    def unknown_mrn(self) -> str:
        self._unknown += 1
        return mrn_for(self._unknown)

    def csv_line(self, row: list[str]) -> bytes:
        self._csv_buf.seek(0)
        self._csv_buf.truncate()
        self._csv.writerow(row)
        return self._csv_buf.getvalue()[:-1].encode("utf-8")  # the writer adds the line end

    # --- EHR -----------------------------------------------------------------------------------
    def ehr(self, res: dict, ctx: RecordContext) -> list[bytes]:
        line = dumps(res)
        if self.rate <= 0:
            return [line]
        rt = res["resourceType"]
        if rt not in _TIME_PATHS:
            if rt == "Patient" and not self.counts["identity_conflict"]:
                # a second chart for the same person under a new Patient.id, without a Patient.link,
                # in a file of its own in the first export (Patient.000 and the re-exports stay as they were)
                twin = json.loads(line)
                twin["id"] = f"{res['id']}-dup"
                self.reexports[f"ehr/{rt}.900.ndjson"].append(dumps(twin))
                self.counts["identity_conflict"] += 1
            if rt == "Patient" and self.rng.random() < self.rate:
                self._correct_ehr(res, retract=False)
            return [line]
        kind = self._choose("ehr", self._ehr_kinds(res))
        if kind is None:
            if rt in _CORRECTABLE and self.rng.random() < self.rate:
                self._correct_ehr(res, retract=rt in _RETRACTABLE and self.rng.random() < 0.3)
            return [line]
        self.counts[kind] += 1
        if kind == "duplicate_in_file":
            return [line, line]
        if kind == "superseded_in_file":
            # an exporter that drops meta and writes two versions: the later line wins at ingest
            first, last = json.loads(line), json.loads(line)
            first.pop("meta", None)
            last.pop("meta", None)
            first["language"] = "en-US"
            return [dumps(first), dumps(last)]
        if kind == "conflicting_duplicate":
            self.reexports[f"ehr/{rt}.001.ndjson"].append(dumps(self._conflict(json.loads(line))))
            return [line]
        bad = json.loads(line)  # a deep copy
        out = self._break_ehr(kind, bad, ctx)
        if rt in _CORRECTABLE and self.rng.random() < 0.5:
            self._correct_ehr(res, retract=False, fix_only=True)
        return [out]

    def _ehr_kinds(self, res: dict) -> list[str]:
        rt = res["resourceType"]
        kinds = ["unparseable", "invalid_encoding", "not_an_object", "missing_resource_type",
                 "missing_required_field", "unknown_patient", "future_time", "before_birth", "wrong_type",
                 "conflicting_duplicate", "duplicate_in_file", "recorded_after_ingest", "superseded_in_file"]
        if rt in _BAD_STATUS:
            kinds.append("invalid_code")
        if rt == "Observation" and "valueCodeableConcept" not in res:
            kinds += ["missing_value", "unknown_instrument"]
            if self._obs_key(res) in _ABSURD or "85354-9" == self._obs_key(res):
                kinds.append("out_of_range")
        if rt == "MedicationAdministration":
            kinds.append("out_of_range")
        period = _PERIODS.get(rt)
        if (period and isinstance(_get(res, period), dict) and "end" in _get(res, period)) or rt == "Appointment":
            kinds.append("end_before_start")
        return kinds

    @staticmethod
    def _obs_key(res: dict) -> str:
        return res["code"]["coding"][0]["code"]

    def _break_ehr(self, kind: str, r: dict, ctx: RecordContext) -> bytes:
        rt = r["resourceType"]
        rng = self.rng
        if kind == "unparseable":
            text = dumps(r).decode("utf-8")
            return text[: max(12, len(text) // 2)].encode("utf-8")
        if kind == "invalid_encoding":
            # a narrative typed in a Windows-1252 tool: not UTF-8
            r["text"] = {"status": "generated",
                         "div": '<div xmlns="http://www.w3.org/1999/xhtml">Résumé saisi au café</div>'}
            return json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode("cp1252", errors="replace")
        if kind == "not_an_object":
            return b"[" + dumps(r) + b"]"
        if kind == "missing_resource_type":
            del r["resourceType"]
        elif kind == "missing_required_field":
            field = rng.choice(_REQUIRED[rt])
            if rt == "Appointment" and field == "participant":
                r["participant"] = [p for p in r["participant"]
                                    if not str(p["actor"].get("reference", "")).startswith("Patient")]
            else:
                r.pop(field.split(".")[0], None)
        elif kind == "wrong_type":
            if rt == "MedicationAdministration" and rng.random() < 0.5:
                r["dosage"]["dose"]["value"] = f"{r['dosage']['dose']['value']} mg"
            else:
                path = next(p for p in _TIME_PATHS[rt] if _get(r, p) is not None)
                _set(r, path, _us_style(str(_get(r, path))))
        elif kind == "invalid_code":
            if rt == "MedicationAdministration" and rng.random() < 0.5:
                r["dosage"]["route"]["coding"][0]["code"] = "C38288"  # an NCI code in the SNOMED slot
            else:
                r["status"] = _BAD_STATUS[rt]
        elif kind == "missing_value":
            for key in ("valueInteger", "valueQuantity", "component"):
                r.pop(key, None)
            r["dataAbsentReason"] = concept(DATA_ABSENT, rng.choice(("asked-declined", "not-performed", "unknown")))
        elif kind == "unknown_instrument":
            r["code"] = concept(LOINC, "2345-7", "Glucose [Mass/volume] in Serum or Plasma")
            r["category"] = [concept("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")]
            for key in ("valueInteger", "valueQuantity", "component"):
                r.pop(key, None)
            r["valueQuantity"] = {"value": rng.randint(70, 140), "unit": "mg/dL", "system": UCUM, "code": "mg/dL"}
        elif kind == "out_of_range":
            if rt == "MedicationAdministration":
                r["dosage"]["dose"]["value"] = rng.choice((5000, 2800, 840.0))
            elif self._obs_key(r) == "85354-9":
                r["component"][0]["valueQuantity"]["value"] = 400
                r["component"][1]["valueQuantity"]["value"] = 0
            else:
                value = _ABSURD[self._obs_key(r)]
                if "valueQuantity" in r:
                    r["valueQuantity"]["value"] = value
                else:
                    r["valueInteger"] = value
        elif kind == "unknown_patient":
            ref = (f"Patient?identifier={MRN_SYSTEM}|{self.unknown_mrn()}" if rng.random() < 0.4
                   else f"Patient/p-{self._unknown + 1 + rng.randrange(10**5):06d}x")
            if rt == "Appointment":
                r["participant"][0]["actor"] = {"reference": ref}
            else:
                r["patient" if rt in ("EpisodeOfCare", "Consent") else "subject"] = {"reference": ref}
        elif kind in ("future_time", "before_birth"):
            year = 2099 if kind == "future_time" else ctx.birth_year - rng.randint(1, 5)
            for path in _TIME_PATHS[rt]:
                value = _get(r, path)
                if isinstance(value, str):
                    _set(r, path, _with_year(value, year))
        elif kind == "recorded_after_ingest":
            # a broken EHR clock: last updated years after any export
            r.setdefault("meta", {})["lastUpdated"] = "2099-01-01T00:00:00Z"
        elif kind == "end_before_start":
            period = r if rt == "Appointment" else _get(r, _PERIODS[rt])
            assert isinstance(period, dict)
            start = _parse(period["start"])
            period["end"] = _fmt_like(start - dt.timedelta(minutes=rng.randint(20, 180)), period["start"])
        return dumps(r)

    def _conflict(self, r: dict) -> dict:
        """Same id and version, different content."""
        if "valueInteger" in r:
            r["valueInteger"] = max(0, r["valueInteger"] - self.rng.randint(1, 3))
        elif "valueQuantity" in r and isinstance(r["valueQuantity"].get("value"), (int, float)):
            r["valueQuantity"]["value"] = max(0, r["valueQuantity"]["value"] - 1)
        elif "component" in r and "valueQuantity" in r["component"][0]:
            r["component"][0]["valueQuantity"]["value"] += 6
        elif r["resourceType"] == "MedicationAdministration":
            r["dosage"]["dose"]["value"] = round(r["dosage"]["dose"]["value"] * 1.1, 1)
        else:
            r["text"] = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">edited</div>'}
        return r

    def _correct_ehr(self, res: dict, retract: bool, fix_only: bool = False) -> None:
        r = json.loads(dumps(res))
        rt = r["resourceType"]
        r["meta"] = {"versionId": str(int(r["meta"]["versionId"]) + 1),
                     "lastUpdated": self._later(r["meta"]["lastUpdated"])}
        if retract:
            r["status"] = "entered-in-error"
        elif not fix_only:
            if rt == "Observation":
                r["status"] = "amended"
                if "valueInteger" in r:
                    r["valueInteger"] = max(0, r["valueInteger"] + self.rng.choice((-2, -1, 1)))
                elif "component" in r and len(r["component"]) > 1:
                    r["component"][1]["valueQuantity"]["value"] += self.rng.choice((-4, 2, 5))
                elif "valueQuantity" in r:
                    r["valueQuantity"]["value"] = max(0, r["valueQuantity"]["value"] + self.rng.choice((-1, 1)))
            elif rt == "MedicationAdministration" and isinstance(r["dosage"]["dose"]["value"], (int, float)):
                r["dosage"]["dose"]["value"] = round(r["dosage"]["dose"]["value"] * 0.9, 1)
            elif rt == "Patient":
                r["telecom"][0]["value"] = r["telecom"][0]["value"][:-4] + f"{self.rng.randrange(10000):04d}"
                r["address"][0]["line"] = [f"{self.rng.randint(2, 999)} Harbor View Rd"]
            elif rt == "Encounter" and "end" in r.get("period", {}):
                end = _parse(r["period"]["end"]) + dt.timedelta(minutes=15)
                r["period"]["end"] = _fmt_like(end, r["period"]["end"])
            elif rt == "Condition":
                r["clinicalStatus"] = concept("http://terminology.hl7.org/CodeSystem/condition-clinical", "remission")
        self.reexports[f"ehr/{rt}.001.ndjson"].append(dumps(r))

    # --- dosing log ----------------------------------------------------------------------------
    def dosing(self, row: list[str], ctx: RecordContext) -> list[bytes]:
        line = self.csv_line(row)
        if self.rate <= 0:
            return [line]
        kind = self._choose("dosing", list(DOSING_KINDS))
        if kind is None:
            if self.rng.random() < self.rate:
                # the first amendment voids its row, so every faulty log carries a voided row
                void = self.rng.random() < 0.3 or not self._voided_a_row
                self._voided_a_row = True
                self._amend_row(row, void=void)
            return [line]
        self.counts[kind] += 1
        if kind == "duplicate_in_file":
            return [line, line]
        if kind == "conflicting_duplicate":
            other = list(row)
            other[_COL["dose_mg"]] = f"{float(row[_COL['dose_mg']]) + 5:.1f}"
            self.reexports["dosing/dosing_log_amendments.csv"].append(self.csv_line(other))
            return [line]
        bad = self._break_row(kind, list(row), ctx)
        if self.rng.random() < 0.5:
            self._amend_row(row, void=False, fix_only=True)
        return [bad]

    def _break_row(self, kind: str, row: list[str], ctx: RecordContext) -> bytes:
        rng, c = self.rng, _COL
        if kind == "unparseable":
            return self.csv_line(row[: rng.randint(5, 12)])   # the row was cut off
        if kind == "missing_required_field":
            row[c[rng.choice(("patient_mrn", "dose_mg", "start_at", "clinician_id", "route", "drug"))]] = ""
        elif kind == "wrong_type":
            if rng.random() < 0.5:
                row[c["dose_mg"]] = rng.choice(("fifty-six", f"{row[c['dose_mg']]}mg", "5O"))
            else:
                row[c["start_at"]] = _us_style(row[c["start_at"]])
        elif kind == "invalid_code":
            if rng.random() < 0.5:
                row[c["route"]] = rng.choice(("nasal", "XX", "IV push"))
            else:
                row[c["drug"]] = "ketamin"
        elif kind == "out_of_range":
            what = rng.choice(("dose", "bp", "spo2", "hr"))
            if what == "dose":
                row[c["dose_mg"]] = "5000.0"
            elif what == "bp":
                row[c["bp_40min_systolic"]], row[c["bp_40min_diastolic"]] = "400", "0"
            elif what == "spo2":
                row[c["spo2_min"]] = "140"
            else:
                row[c["heart_rate_pre"]] = "400"
        elif kind == "unknown_patient":
            row[c["patient_mrn"]] = self.unknown_mrn()
        elif kind == "unknown_clinic":
            row[c["clinic_id"]] = "clinic-unlisted"      # no Organization/Location of the network
        elif kind in ("future_time", "before_birth"):
            year = 2099 if kind == "future_time" else ctx.birth_year - rng.randint(1, 5)
            for col in ("start_at", "end_at", "monitoring_end_at"):
                if row[c[col]]:
                    row[c[col]] = _with_year(row[c[col]], year)
        elif kind == "timestamp_without_offset":
            # a room logging local times, at a clinic the pipeline knows no time zone for
            row[c["clinic_id"]] = "clinic-00"
            for col in ("start_at", "end_at", "monitoring_end_at"):
                row[c[col]] = _without_offset(row[c[col]])
        elif kind == "invalid_identifier":
            # a careless or hostile export: a spreadsheet formula or free text where an id belongs
            row[c["dosing_id"]] = rng.choice(('=HYPERLINK("http://example.invalid","x")', "+cmd|' /C calc'!A0",
                                              "@SUM(1+1)", "dose 12/3"))
        elif kind == "end_before_start":
            col = "end_at" if row[c["end_at"]] else "monitoring_end_at"
            start = _parse(row[c["start_at"]])
            row[c[col]] = _fmt_like(start - dt.timedelta(minutes=rng.randint(10, 90)), row[c["start_at"]])
        return self.csv_line(row)

    def _amend_row(self, row: list[str], void: bool, fix_only: bool = False) -> None:
        new = list(row)
        new[_COL["amended_at"]] = self._later(row[_COL["recorded_at"]])
        if void:
            new[_COL["is_void"]] = "true"
        elif not fix_only:
            if new[_COL["bp_discharge_systolic"]] and self.rng.random() < 0.5:
                new[_COL["bp_discharge_systolic"]] = str(int(new[_COL["bp_discharge_systolic"]]) - 6)
            else:
                new[_COL["dose_mg"]] = f"{float(new[_COL['dose_mg']]) * 0.9:.1f}"
        self.reexports["dosing/dosing_log_amendments.csv"].append(self.csv_line(new))

    # --- notes ---------------------------------------------------------------------------------
    def note(self, rec: dict, ctx: RecordContext) -> list[bytes]:
        line = dumps(rec)
        if self.rate <= 0:
            return [line]
        kind = self._choose("notes", list(NOTE_KINDS))
        if kind is None:
            if self.rng.random() < self.rate:
                self._amend_note(rec, retract=self.rng.random() < 0.3)
            return [line]
        self.counts[kind] += 1
        if kind == "duplicate_in_file":
            return [line, line]
        if kind == "conflicting_duplicate":
            other = dict(rec, text=rec["text"] + " (edited)")
            self.reexports["notes/therapy_notes_amendments.jsonl"].append(dumps(other))
            return [line]
        bad = self._break_note(kind, dict(rec), ctx)
        if self.rng.random() < 0.5:
            self._amend_note(rec, retract=False, fix_only=True)
        return [bad]

    def _break_note(self, kind: str, r: dict, ctx: RecordContext) -> bytes:
        rng = self.rng
        if kind == "unparseable":
            text = dumps(r).decode("utf-8")
            return text[: max(12, len(text) // 3)].encode("utf-8")
        if kind == "invalid_encoding":
            r["text"] = r["text"] + " Patient felt déjà vu, naïve about the café meeting."
            return json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode("cp1252", errors="replace")
        if kind == "not_an_object":
            return dumps([r])
        if kind == "missing_required_field":
            del r[rng.choice(_NOTE_REQUIRED)]
        elif kind == "wrong_type":
            r["session_start"] = _us_style(r["session_start"])
        elif kind == "invalid_code":
            r["session_type"] = rng.choice(("group", "dosing-room", "family"))
        elif kind == "unknown_patient":
            r["patient_mrn"] = self.unknown_mrn()
        elif kind == "unknown_clinic":
            r["clinic_id"] = "clinic-unlisted"          # no Organization/Location of the network
        elif kind in ("future_time", "before_birth"):
            year = 2099 if kind == "future_time" else ctx.birth_year - rng.randint(1, 5)
            r["session_start"] = _with_year(r["session_start"], year)
            r["session_end"] = _with_year(r["session_end"], year)
        elif kind == "end_before_start":
            start = _parse(r["session_start"])
            r["session_end"] = _fmt_like(start - dt.timedelta(minutes=rng.randint(10, 60)), r["session_start"])
        return dumps(r)

    def _amend_note(self, rec: dict, retract: bool, fix_only: bool = False) -> None:
        r = dict(rec)
        r["amended_at"] = self._later(rec["signed_at"])
        if retract:
            r["status"] = "entered-in-error"
        elif not fix_only:
            r["status"] = "amended"
            r["text"] = rec["text"] + " Addendum: corrected session details after review."
        else:
            r["status"] = "amended"
        self.reexports["notes/therapy_notes_amendments.jsonl"].append(dumps(r))
