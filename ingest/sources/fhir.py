"""FHIR R4 bulk NDJSON (`ehr/*.ndjson`) -> candidate records, in one SQL statement per file.

Each line is parsed once with `json_transform` into a STRUCT of the elements any read resource type
uses (docs/inputs.md); nested, polymorphic parts (codings, components, participants, contained
resources) stay small JSON fragments that are probed further with JSON paths. Every element is read
as VARCHAR and cast with TRY_CAST, so a wrong type yields a reason code instead of an error, and
elements we do not know (extensions, narrative, contained resources) are simply not read.

Messiness handled: value[x] (valueQuantity / valueInteger / valueString / valueCodeableConcept),
blood-pressure components, dataAbsentReason (-> missing_value), literal, absolute-URL and conditional
(`Patient?identifier=system|MRN`) references, logical references (`subject.identifier`),
`medicationReference` to a contained Medication, partial dates (`2013-04-02` = midnight UTC).
Unknown resource types are counted as ignored.
"""
from __future__ import annotations

import json
import re

from ingest.sources import KAP_SYSTEM, Context, first_failure, select_columns, sql_str

READ_TYPES = (
    "Patient", "Organization", "Location", "ServiceRequest", "Appointment", "Encounter",
    "EpisodeOfCare", "Condition", "Observation", "MedicationAdministration", "AdverseEvent",
    "Consent", "QuestionnaireResponse", "DocumentReference", "Practitioner", "PractitionerRole",
)

_V = "VARCHAR"
_J = "JSON"
_REF = {"reference": _V, "identifier": {"value": _V}}
_PERIOD = {"start": _V, "end": _V}
# CodeableConcepts every Observation carries are read typed: serialising them back to JSON text
# and parsing that again per probe cost about a third of the statement
_CC = {"coding": [{"system": _V, "code": _V}], "text": _V}

STRUCTURE = {
    "resourceType": _V, "id": _V, "meta": {"versionId": _V, "lastUpdated": _V}, "status": _V,
    "subject": _REF, "patient": _REF, "encounter": {"reference": _V}, "context": {"reference": _V},
    "code": _CC, "category": [_CC], "type": _J, "class": _J, "interpretation": [_CC],
    "effectiveDateTime": _V, "effectivePeriod": _PERIOD, "effectiveInstant": _V,
    "valueInteger": _V, "valueQuantity": {"value": _V, "unit": _V, "code": _V},
    "valueCodeableConcept": _J, "valueString": _V, "dataAbsentReason": _J,
    # component.valueCodeableConcept: the ineligibility reason's standard place (docs/inputs.md)
    "component": [{"code": _CC, "valueQuantity": {"value": _V}, "valueCodeableConcept": _CC}],
    "period": _PERIOD, "start": _V, "end": _V, "participant": _J, "appointmentType": _J,
    "serviceType": _J, "cancelationReason": _J, "extension": _J,
    "serviceProvider": {"reference": _V}, "appointment": _J, "episodeOfCare": _J,
    "managingOrganization": {"reference": _V}, "authoredOn": _V, "requester": {"reference": _V},
    "performer": _J, "medicationCodeableConcept": _J, "medicationReference": {"reference": _V},
    "contained": _J, "dosage": {"route": _J, "dose": {"value": _V, "unit": _V, "code": _V}},
    "statusReason": _J, "clinicalStatus": _J, "verificationStatus": _J, "onsetDateTime": _V,
    "recordedDate": _V, "date": _V, "event": _J, "seriousness": _J, "severity": _J,
    "suspectEntity": _J, "dateTime": _V, "questionnaire": _V, "authored": _V, "item": _J,
    "content": _J, "identifier": _J, "birthDate": _V, "gender": _V, "address": _J,
    "deceasedBoolean": _V, "deceasedDateTime": _V, "name": _J,
    # staff (Practitioner, PractitionerRole): no name is ever read
    "practitioner": _REF, "organization": {"reference": _V}, "specialty": _J, "qualification": _J,
    "active": _V,
    "link": _J,
}

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
K = KAP_SYSTEM

# instrument: (system|code list, range min, max)
INSTRUMENTS = {
    "phq9": ([f"{LOINC}|44261-6"], 0, 27),
    "gad7": ([f"{LOINC}|70274-6"], 0, 21),
    "pcl5": ([f"{LOINC}|101698-9"], 0, 80),
    "phq2": ([f"{LOINC}|55758-7"], 0, 6),
    "cadss": ([f"{K}|cadss"], 0, 92),
    "cadss6": ([f"{K}|cadss-6"], 0, 24),
    "moaas": ([f"{K}|moaas"], 0, 5),
}
VITALS = {
    "blood_pressure": ([f"{LOINC}|85354-9"], None, None),
    "heart_rate": ([f"{LOINC}|8867-4"], 20, 250),
    "spo2": ([f"{LOINC}|59408-5", f"{LOINC}|2708-6"], 50, 100),
    "weight": ([f"{LOINC}|29463-7"], 25, 350),
}
ROUTES = {"47625008": "IV", "78421000": "IM", "46713006": "IN", "37161004": "SL", "26643006": "PO"}
DOSE_RANGE = {"IV": (1, 200), "IM": (1, 200), "IN": (28, 84), "SL": (10, 500), "PO": (10, 500)}
CONTRAINDICATIONS = ["38341003", "56265001", "69322001", "77386006", "66214007"]

# Staff roles (docs/inputs.md): prescriber | dosing_clinician | therapist | other, from the codes of
# PractitionerRole.code and .specialty; first matching row wins. Patterns are full regular
# expressions over 'system|code'. A staff member whose roles carry none of these codes falls back to
# Practitioner.qualification (degree or licence, code or text; `STAFF_QUALIFICATIONS`).
NUCC = "http://nucc.org/provider-taxonomy"
PRACTITIONER_ROLE = "http://terminology.hl7.org/CodeSystem/practitioner-role"
STAFF_ROLES: tuple[tuple[str, str, str], ...] = (
    # (role, source, pattern)
    ("prescriber", "local", re.escape(f"{K}|prescriber")),
    ("dosing_clinician", "local", re.escape(f"{K}|dosing-clinician")),
    ("therapist", "local", re.escape(f"{K}|therapist")),
    ("other", "local", re.escape(f"{K}|other")),
    ("dosing_clinician", "snomed", re.escape(SNOMED) + r"\|(224535009|88189002)"),   # registered nurse, anesthesiologist
    ("prescriber", "snomed", re.escape(SNOMED) + r"\|(80584001|309343006|224571005)"),  # psychiatrist, physician, NP
    ("therapist", "snomed", re.escape(SNOMED) + r"\|(59944000|224588003)"),          # psychologist, psychotherapist
    ("dosing_clinician", "nucc", re.escape(NUCC) + r"\|(207L|3675|163W|164W)\w*"),  # anesthesiology, CRNA, RN, LPN
    ("prescriber", "nucc", re.escape(NUCC) + r"\|(2084|207Q|207R|208D|363L|363A)\w*"),  # psychiatry, physicians, NP, PA
    ("therapist", "nucc", re.escape(NUCC) + r"\|(103T|1041|106H|101Y)\w*"),         # psychologist, social worker, MFT, counselor
    ("prescriber", "hl7", re.escape(f"{PRACTITIONER_ROLE}|doctor")),
    ("dosing_clinician", "hl7", re.escape(f"{PRACTITIONER_ROLE}|nurse")),
)
# Practitioner.qualification (v2-0360 degree code, or text): the local fallback
STAFF_QUALIFICATIONS: tuple[tuple[str, str], ...] = (
    ("prescriber", "MD|DO|NP|PMHNP|APRN|PA|PA-C"),
    ("dosing_clinician", "RN|CRNA|LPN|BSN|MSN"),
    ("therapist", "PHD|PSYD|LCSW|LICSW|LMSW|MSW|LMFT|LPC|LPCC|LMHC"),
)

STATUS_SETS = {
    "Observation": ["registered", "preliminary", "final", "amended", "corrected", "cancelled",
                    "entered-in-error", "unknown"],
    "Appointment": ["proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
                    "entered-in-error", "checked-in", "waitlist"],
    "Encounter": ["planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
                  "entered-in-error", "unknown"],
    "EpisodeOfCare": ["planned", "waitlist", "active", "onhold", "finished", "cancelled",
                      "entered-in-error"],
    "MedicationAdministration": ["in-progress", "not-done", "on-hold", "completed",
                                 "entered-in-error", "stopped"],
    "Consent": ["draft", "proposed", "active", "rejected", "inactive", "entered-in-error"],
    "ServiceRequest": ["draft", "active", "on-hold", "revoked", "completed", "entered-in-error",
                       "unknown"],
    "QuestionnaireResponse": ["in-progress", "completed", "amended", "entered-in-error", "stopped"],
    "DocumentReference": ["current", "superseded", "entered-in-error"],
}


def _lst(items) -> str:
    return "[" + ", ".join(sql_str(str(i)) for i in items) + "]"


def _obj(fields: dict[str, str]) -> str:
    return "json_object(" + ", ".join(f"'{k}', {v}" for k, v in fields.items()) + ")"


def _staff_role_case(sc: str, column: int) -> str:
    """CASE over a list of 'system|code' strings -> STAFF_ROLES' role (column 0), source (1) or the
    matched 'system|code' (2); NULL when no row matches."""
    def hit(pattern: str) -> str:
        return f"list_filter({sc}, lambda x: regexp_full_match(x, {sql_str(pattern)}))"
    whens = " ".join(
        f"WHEN len({hit(pat)}) > 0 THEN " + (f"{hit(pat)}[1]" if column == 2 else sql_str((role, src)[column]))
        for role, src, pat in STAFF_ROLES)
    return f"CASE {whens} END"


def _qualification_role(quals: str) -> str:
    """CASE over qualification codes/texts (upper case, dots removed) -> STAFF_QUALIFICATIONS' role."""
    whens = " ".join(
        f"WHEN len(list_filter({quals}, lambda x: regexp_full_match(x, {sql_str('(' + alts + ')')}))) > 0 "
        f"THEN {sql_str(role)}" for role, alts in STAFF_QUALIFICATIONS)
    return f"CASE {whens} END"


MACROS = rf"""
-- 'system|code' strings of a CodeableConcept, and of an array of CodeableConcepts
CREATE OR REPLACE TEMP MACRO kap_sc(cc) AS coalesce(list_transform(json_extract(cc, '$.coding[*]'),
    lambda c: coalesce(c->>'$.system', '') || '|' || coalesce(c->>'$.code', '')), []);
CREATE OR REPLACE TEMP MACRO kap_sc_list(ccs) AS coalesce(list_transform(json_extract(ccs, '$[*].coding[*]'),
    lambda c: coalesce(c->>'$.system', '') || '|' || coalesce(c->>'$.code', '')), []);
-- the same for a CodeableConcept read typed (STRUCT with a list of codings)
CREATE OR REPLACE TEMP MACRO kap_sc_typed(cc) AS coalesce(list_transform(cc.coding,
    lambda c: coalesce(c.system, '') || '|' || coalesce(c.code, '')), []);
-- the codes of a list of typed CodeableConcepts, NULLs left out
CREATE OR REPLACE TEMP MACRO kap_codes_typed(ccs) AS list_filter(flatten(list_transform(ccs,
    lambda x: list_transform(x.coding, lambda c: c.code))), lambda c: c IS NOT NULL);
-- valueQuantity.value of the first typed component coded `code` (blood-pressure parts)
CREATE OR REPLACE TEMP MACRO kap_component_value(components, code) AS
    list_filter(components, lambda c: list_contains(kap_codes_typed([c.code]), code))[1].valueQuantity.value;
CREATE OR REPLACE TEMP MACRO kap_codes(sc) AS list_transform(sc, lambda x: regexp_extract(x, '[^|]*$'));
CREATE OR REPLACE TEMP MACRO kap_code_in(sc, system) AS
    list_filter(sc, lambda x: starts_with(x, system || '|'))[1][length(system) + 2:];
CREATE OR REPLACE TEMP MACRO kap_session_type(sc) AS CASE
    WHEN list_contains(sc, '{K}|consult') THEN 'consult'
    WHEN list_contains(sc, '{K}|preparation') THEN 'preparation'
    WHEN list_contains(sc, '{K}|dosing') THEN 'dosing'
    WHEN list_contains(sc, '{K}|integration') THEN 'integration'
    WHEN list_contains(sc, '{K}|psychotherapy') THEN 'psychotherapy'
    WHEN list_contains(sc, '{K}|discharge') THEN 'discharge'
    WHEN list_contains(kap_codes(sc), '90791') THEN 'consult'
    WHEN list_has_any(kap_codes(sc), ['G2082', 'G2083', '96365']) THEN 'dosing'
    WHEN list_has_any(kap_codes(sc), ['90832', '90834', '90837']) THEN 'psychotherapy'
    ELSE NULL END;
-- first reference among a list whose target type is one of the given ones
CREATE OR REPLACE TEMP MACRO kap_ref_of(refs, pattern) AS
    list_filter(refs, lambda r: regexp_matches(r, '(^|/)(' || pattern || ')[/?]'))[1];
"""


_BRANCH_TYPES = re.compile(r"^\s*WHEN rtype (?:= '(\w+)'|IN \(([^)]*)\))")


def _prune_branches(case_sql: str, types: set[str]) -> str:
    """Drop the `WHEN rtype = 'T' ...` lines of a one-branch-per-line CASE whose types are not read."""
    kept = []
    for line in case_sql.split("\n"):
        m = _BRANCH_TYPES.match(line)
        if m:
            branch = {m.group(1)} if m.group(1) else set(re.findall(r"'(\w+)'", m.group(2)))
            if not branch & types:
                continue
        kept.append(line)
    return "\n".join(kept)


def file_resource_types(name: str) -> tuple[str, ...] | None:
    """The types a bulk file is expected to hold, from its name (FHIR bulk files are named by
    resource type): `Observation.000.ndjson` -> ('Observation',), `Practitioner.000.ndjson` -> ()
    (a type the pipeline does not read), None when the name is not a resource type."""
    head = name.split(".", 1)[0]
    if head in READ_TYPES:
        return (head,)
    return () if head[:1].isupper() and head.isalpha() else None


def records_sql(ctx: Context) -> str:
    """The reader's SELECT. With `ctx.resource_types` set, the type-specific parts are built only for
    those types (planning the full statement costs ~0.2 s per file); a row of another read type is
    then marked reason '__retry__' with its type in `detail`, and the loader runs the statement
    again for the union of types - so the result is the same as with all types."""
    types = set(READ_TYPES) if ctx.resource_types is None else set(ctx.resource_types)
    structure = sql_str(json.dumps(STRUCTURE))

    instrument_case = "CASE " + " ".join(
        f"WHEN list_has_any(sc, {_lst(codes)}) THEN '{name}'" for name, (codes, _, _) in INSTRUMENTS.items()
    ) + " END"
    measure_case = "CASE " + " ".join(
        f"WHEN list_has_any(sc, {_lst(codes)}) THEN '{name}'" for name, (codes, _, _) in VITALS.items()
    ) + " END"
    score_range = "CASE instrument " + " ".join(
        f"WHEN '{n}' THEN value_num NOT BETWEEN {lo} AND {hi}" for n, (_, lo, hi) in INSTRUMENTS.items()
    ) + " END"
    vital_range = "CASE measure " + " ".join(
        f"WHEN '{n}' THEN value_num NOT BETWEEN {lo} AND {hi}" for n, (_, lo, hi) in VITALS.items() if lo is not None
    ) + " WHEN 'blood_pressure' THEN (systolic NOT BETWEEN 50 AND 300 OR diastolic NOT BETWEEN 20 AND 200) END"
    route_case = "CASE " + " ".join(
        f"WHEN list_contains(route_codes, '{c}') THEN '{r}'" for c, r in ROUTES.items()
    ) + " WHEN len(route_codes) > 0 THEN 'other' END"
    dose_range = "CASE route " + " ".join(
        f"WHEN '{r}' THEN dose_mg NOT BETWEEN {lo} AND {hi}" for r, (lo, hi) in DOSE_RANGE.items()
    ) + " ELSE false END"
    status_whens = " ".join(
        f"WHEN '{t}' THEN list_contains({_lst(v)}, status)" for t, v in STATUS_SETS.items() if t in types)
    status_ok = f"CASE rtype {status_whens} ELSE true END" if status_whens else "true"

    def miss(cond: str, field: str, for_types: list[str]) -> tuple[str, str, str] | None:
        for_types = [t for t in for_types if t in types]
        if not for_types:
            return None
        return (f"rtype IN ({', '.join(sql_str(t) for t in for_types)}) AND ({cond})",
                "missing_required_field", sql_str(field))

    checks = [
        ("NOT ok", "unparseable", "'not valid JSON'"),
        ("NOT is_obj", "not_an_object", "'JSON value is not an object'"),
        ("rtype IS NULL OR rtype = ''", "missing_resource_type", "'resourceType absent'"),
        # a number, boolean, array or object is read as text; no resource type looks like that
        ("NOT regexp_full_match(rtype, '[A-Z][A-Za-z]*')", "wrong_type",
         "'resourceType is not a type name: ' || left(rtype, 40)"),
        (f"rtype NOT IN {tuple(READ_TYPES)}", "__ignored__", "NULL"),
        *([] if types >= set(READ_TYPES) else
          [(f"rtype NOT IN ({', '.join(sql_str(t) for t in sorted(types))})" if types else "true",
            "__retry__", "rtype")]),
        ("rid IS NULL OR rid = ''", "missing_required_field", "'id'"),
        ("kap_bad_ts(lu_raw)", "wrong_type", "'meta.lastUpdated'"),
        miss("status IS NULL", "status", ["Observation", "Appointment", "Encounter", "EpisodeOfCare",
                                          "MedicationAdministration", "Consent"]),
        ("status IS NOT NULL AND NOT " + status_ok, "invalid_code", "rtype || '.status=' || left(status, 40)"),
        # a retraction needs only its identity (and its patient, when it names one)
        miss("mrn IS NULL AND NOT retract", "identifier[MR]", ["Patient"]),
        miss("pref IS NULL AND pref_mrn IS NULL AND NOT retract", "subject/patient",
             ["ServiceRequest", "Appointment", "Encounter", "EpisodeOfCare", "Condition", "Observation",
              "MedicationAdministration", "AdverseEvent", "Consent", "QuestionnaireResponse",
              "DocumentReference"]),
        ("NOT retract AND occurred_field IS NOT NULL AND occurred_raw IS NULL", "missing_required_field",
         "occurred_field"),
        miss("code IS NULL AND NOT retract", "code", ["Condition", "Observation"]),
        miss("staff_ref IS NULL AND NOT retract", "practitioner", ["PractitionerRole"]),
        miss("event IS NULL AND NOT retract", "event", ["AdverseEvent"]),
        miss("med_sc IS NULL AND NOT retract", "medication[x]", ["MedicationAdministration"]),
        ("kap_bad_ts(occurred_raw)", "wrong_type", "coalesce(occurred_field, 'date')"),
        ("kap_bad_ts(end_raw)", "wrong_type", "'end'"),
        ("rtype = 'Patient' AND (kap_bad_ts(birth_date) OR (birth_date IS NOT NULL AND birth_year IS NULL))",
         "wrong_type", "'birthDate'"),
        # plausibility: nobody alive was born before 1900, and nobody is born after the export
        ("rtype = 'Patient' AND NOT retract AND birth_year IS NOT NULL AND "
         "(birth_year < 1900 OR kap_ts(birth_date) > $ingested_at)", "out_of_range",
         "CASE WHEN birth_year < 1900 THEN 'birthDate before 1900' ELSE 'birthDate in the future' END"),
        ("rtype = 'Patient' AND gender IS NOT NULL AND gender NOT IN ('male', 'female', 'other', 'unknown')",
         "invalid_code", "'gender'"),
        ("retract", "__ok__", "NULL"),
        # Observation
        ("rtype = 'Observation' AND instrument IS NULL AND measure IS NULL AND NOT is_screening",
         "unknown_instrument", "'code ' || left(array_to_string(kap_codes(sc), ','), 60)"),
        ("rtype = 'Observation' AND is_screening AND decision IS NULL AND value_cc IS NULL",
         "missing_value", "'valueCodeableConcept'"),
        ("rtype = 'Observation' AND is_screening AND decision IS NULL", "invalid_code", "'screening decision'"),
        ("rtype = 'Observation' AND measure = 'blood_pressure' AND systolic_raw IS NULL AND diastolic_raw IS NULL",
         "missing_value", "coalesce('dataAbsentReason ' || (dar->>'$.coding[0].code'), 'component')"),
        ("rtype = 'Observation' AND measure = 'blood_pressure' AND "
         "((systolic_raw IS NOT NULL AND systolic IS NULL) OR (diastolic_raw IS NOT NULL AND diastolic IS NULL))",
         "wrong_type", "'component.valueQuantity.value'"),
        ("rtype = 'Observation' AND NOT is_screening AND coalesce(measure, '') <> 'blood_pressure' AND value_raw IS NULL",
         "missing_value", "coalesce('dataAbsentReason ' || (dar->>'$.coding[0].code'), 'value[x]')"),
        ("rtype = 'Observation' AND NOT is_screening AND coalesce(measure, '') <> 'blood_pressure' AND value_num IS NULL",
         "wrong_type", "'value[x]'"),
        ("rtype = 'Observation' AND instrument IS NOT NULL AND " + score_range, "out_of_range",
         "instrument || ' score ' || value_num"),
        ("rtype = 'Observation' AND measure IS NOT NULL AND " + vital_range, "out_of_range",
         "measure || ' ' || coalesce(value_num::VARCHAR, systolic || '/' || diastolic)"),
        # MedicationAdministration
        ("rtype = 'MedicationAdministration' AND status = 'unknown'", "invalid_code",
         "'MedicationAdministration.status=unknown'"),
        ("rtype = 'MedicationAdministration' AND drug <> 'other' AND route = 'other'", "invalid_code",
         "'dosage.route ' || left(array_to_string(route_codes_, ','), 60)"),
        ("rtype = 'MedicationAdministration' AND dose_raw IS NOT NULL AND dose_mg IS NULL", "wrong_type",
         "'dosage.dose.value'"),
        ("rtype = 'MedicationAdministration' AND drug <> 'other' AND dose_mg IS NOT NULL AND " + dose_range,
         "out_of_range", "'dose ' || dose_mg || ' mg ' || route"),
        ("end_at < occurred_at", "end_before_start", "'end ' || kap_iso(end_at) || ' < start ' || kap_iso(occurred_at)"),
    ]
    only = re.compile(r"^rtype = '(\w+)'")
    checks = [c for c in checks if c is not None
              and (not only.match(c[0]) or only.match(c[0]).group(1) in types)]
    check = first_failure(checks)

    # event type per resource
    event_type = f"""CASE
        WHEN retract THEN 'record_retracted'
        WHEN rtype = 'Patient' THEN 'patient_registered'
        WHEN rtype IN ('Organization', 'Location') THEN 'clinic_registered'
        WHEN rtype = 'ServiceRequest' THEN 'referral_received'
        WHEN rtype = 'Appointment' THEN CASE
            WHEN status IN ('proposed', 'pending', 'booked', 'waitlist') THEN 'appointment_booked'
            WHEN status IN ('arrived', 'checked-in') THEN 'appointment_arrived'
            WHEN status = 'fulfilled' THEN 'appointment_fulfilled'
            WHEN status = 'cancelled' THEN 'appointment_cancelled'
            WHEN status = 'noshow' THEN 'appointment_noshow' END
        WHEN rtype = 'Encounter' THEN 'encounter_' || coalesce(session_type, 'other')
        WHEN rtype = 'EpisodeOfCare' THEN CASE WHEN status IN ('finished', 'cancelled')
            THEN 'episode_closed' ELSE 'episode_opened' END
        WHEN rtype = 'Condition' THEN 'condition_recorded'
        WHEN rtype = 'Observation' THEN CASE WHEN is_screening THEN 'screening_decided'
            WHEN instrument IS NOT NULL THEN 'assessment_scored' ELSE 'vital_signs_recorded' END
        WHEN rtype = 'MedicationAdministration' THEN CASE WHEN status IN ('completed', 'in-progress')
            THEN 'medication_administered' ELSE 'medication_not_given' END
        WHEN rtype = 'AdverseEvent' THEN 'adverse_event_reported'
        WHEN rtype = 'Consent' THEN 'consent_recorded'
        WHEN rtype = 'QuestionnaireResponse' THEN 'questionnaire_answered'
        WHEN rtype = 'DocumentReference' THEN 'ehr_document_recorded'
        WHEN rtype = 'Practitioner' THEN 'staff_registered'
        WHEN rtype = 'PractitionerRole' THEN 'staff_role_recorded'
    END"""

    iso = "kap_iso"
    appt = {
        "appointment_id": "rid", "clinic_id": "kap_ref_id(kap_ref_of(part_refs, 'Location|Organization'))",
        "practitioner_id": "kap_ref_id(kap_ref_of(part_refs, 'Practitioner|PractitionerRole'))",
        "session_type": "coalesce(session_type, 'other')", "status": "status",
        "start_at": f"{iso}(occurred_at)", "end_at": f"{iso}(end_at)",
        "cancelled_at": f"CASE WHEN status = 'cancelled' THEN {iso}(coalesce(kap_ts(cancel_ext), lu)) END",
        "cancel_reason": "json_extract_string(j.cancelationReason, '$.coding[0].code')", "version_id": "vid",
    }
    session = {
        "encounter_id": "rid",
        "appointment_id": "kap_ref_id(json_extract_string(j.appointment, '$[0].reference'))",
        "episode_id": "kap_ref_id(json_extract_string(j.episodeOfCare, '$[0].reference'))",
        "clinic_id": "kap_ref_id(j.serviceProvider.reference)",
        "practitioner_id": "kap_ref_id(kap_ref_of(json_extract_string(j.participant, '$[*].individual.reference'), 'Practitioner|PractitionerRole'))",
        "session_type": "coalesce(session_type, 'other')", "status": "status",
        "encounter_class": """coalesce(j."class"->>'$.code', json_extract_string(j."class", '$.coding[0].code'))""",
        "cpt_code": f"coalesce(kap_code_in(sc, '{CPT}'), kap_code_in(sc, '{HCPCS}'))",
        "start_at": f"{iso}(occurred_at)", "end_at": f"{iso}(end_at)",
        "duration_min": "round(date_diff('second', occurred_at, end_at) / 60.0, 1)", "version_id": "vid",
    }
    patient = {
        "birth_year": "birth_year", "gender": "gender",
        "state": "json_extract_string(j.address, '$[0].state')",
        "zip3": "nullif(left(regexp_replace(coalesce(json_extract_string(j.address, '$[0].postalCode'), ''), '[^0-9]', '', 'g'), 3), '')",
        "clinic_id": "kap_ref_id(j.managingOrganization.reference)",
        "is_deceased": "coalesce(j.deceasedBoolean = 'true', false) OR j.deceasedDateTime IS NOT NULL", "version_id": "vid",
        # documented chart merges (Patient.link): the other chart's Patient.id
        "replaced_by_id": "kap_ref_id(list_filter(json_extract(j.link, '$[*]'), lambda l: (l->>'$.type') = 'replaced-by')[1]->>'$.other.reference')",
        "replaces_id": "kap_ref_id(list_filter(json_extract(j.link, '$[*]'), lambda l: (l->>'$.type') = 'replaces')[1]->>'$.other.reference')",
    }
    payload = f"""CASE
        WHEN retract THEN {_obj({"retracted_resource": "rtype", "reason": "'entered-in-error'"})}
        WHEN rtype = 'Patient' THEN {_obj(patient)}
        WHEN rtype IN ('Organization', 'Location') THEN {_obj({
            "clinic_id": "rid", "name": "j.name->>'$'",
            "state": "coalesce(json_extract_string(j.address, '$[0].state'), json_extract_string(j.address, '$.state'))",
            "resource_type": "rtype",
            "time_zone": "json_extract_string(list_filter(json_extract(j.extension, '$[*]'), lambda e: (e->>'$.url') = 'http://hl7.org/fhir/StructureDefinition/timezone')[1], '$.valueCode')"})}
        WHEN rtype = 'ServiceRequest' THEN {_obj({
            "referral_id": "rid", "clinic_id": "kap_ref_id(kap_ref_of(json_extract_string(j.performer, '$[*].reference'), 'Organization'))",
            "status": "status", "code": f"kap_code_in(sc, '{SNOMED}')",
            "is_self_referral": "coalesce(kap_ref_kind(j.requester.reference) IS NOT NULL, false)",
            "authored_at": f"{iso}(occurred_at)", "version_id": "vid"})}
        WHEN rtype = 'Appointment' THEN {_obj(appt)}
        WHEN rtype = 'Encounter' THEN {_obj(session)}
        WHEN rtype = 'EpisodeOfCare' THEN {_obj({
            "episode_id": "rid", "clinic_id": "kap_ref_id(j.managingOrganization.reference)", "status": "status",
            "start_at": f"{iso}(occurred_at)", "end_at": f"{iso}(end_at)", "version_id": "vid"})}
        WHEN rtype = 'Condition' THEN {_obj({
            "condition_id": "rid",
            "code_system": f"CASE WHEN kap_code_in(sc, '{SNOMED}') IS NOT NULL THEN 'snomed' WHEN list_has_any(list_transform(sc, lambda x: x LIKE '%icd-10%|%'), [true]) THEN 'icd10' ELSE 'other' END",
            "code": f"coalesce(kap_code_in(sc, '{SNOMED}'), kap_codes(sc)[1])",
            "category": "j.category[1].coding[1].code",
            "clinical_status": "json_extract_string(j.clinicalStatus, '$.coding[0].code')",
            "verification_status": "json_extract_string(j.verificationStatus, '$.coding[0].code')",
            "is_contraindication": f"list_has_any(sc, {_lst(SNOMED + '|' + c for c in CONTRAINDICATIONS)})",
            "recorded_at": f"{iso}(coalesce(kap_ts(j.recordedDate), kap_ts(j.onsetDateTime)))", "version_id": "vid"})}
        WHEN rtype = 'Observation' AND is_screening THEN {_obj({
            "observation_id": "rid", "decision": "decision",
            "reason_code": f"coalesce(list_filter(flatten(list_transform(j.component, lambda c: coalesce(c.valueCodeableConcept.coding, []))), lambda x: x.system = '{SNOMED}')[1].code, kap_codes_typed(j.interpretation)[1], kap_codes_typed(list_transform(j.component, lambda c: c.code))[1])",
            "encounter_id": "kap_ref_id(j.encounter.reference)", "status": "status", "version_id": "vid"})}
        WHEN rtype = 'Observation' AND instrument IS NOT NULL THEN {_obj({
            "observation_id": "rid", "instrument": "instrument", "code": "kap_codes(sc)[1]",
            "score": "value_num", "status": "status",
            "encounter_id": "kap_ref_id(j.encounter.reference)", "version_id": "vid"})}
        WHEN rtype = 'Observation' THEN {_obj({
            "observation_id": "rid", "measure": "measure", "systolic": "systolic", "diastolic": "diastolic",
            "value": "CASE WHEN measure <> 'blood_pressure' THEN value_num END",
            "unit": "CASE WHEN measure = 'blood_pressure' THEN 'mm[Hg]' ELSE coalesce(j.valueQuantity.code, j.valueQuantity.unit) END",
            "status": "status", "encounter_id": "kap_ref_id(j.encounter.reference)", "version_id": "vid"})}
        WHEN rtype = 'MedicationAdministration' AND status IN ('completed', 'in-progress') THEN {_obj({
            "administration_id": "rid", "drug": "drug", "rxnorm_code": f"kap_code_in(med_sc_list, '{RXNORM}')",
            "route": "route", "dose_mg": "dose_mg", "status": "status", "start_at": f"{iso}(occurred_at)",
            "end_at": f"{iso}(end_at)", "encounter_id": "kap_ref_id(j.context.reference)",
            "clinic_id": "NULL::VARCHAR", "version_id": "vid"})}
        WHEN rtype = 'MedicationAdministration' THEN {_obj({
            "administration_id": "rid", "drug": "drug", "route": "route", "status": "status",
            "start_at": f"{iso}(occurred_at)", "encounter_id": "kap_ref_id(j.context.reference)",
            "status_reason": "json_extract_string(j.statusReason, '$[0].coding[0].code')", "version_id": "vid"})}
        WHEN rtype = 'AdverseEvent' THEN {_obj({
            "adverse_event_id": "rid", "event_code": f"coalesce(kap_code_in(sc, '{SNOMED}'), kap_codes(sc)[1])",
            "event_display": "json_extract_string(j.event, '$.coding[0].display')",
            "seriousness": "json_extract_string(j.seriousness, '$.coding[0].code')",
            "severity": "json_extract_string(j.severity, '$.coding[0].code')",
            "suspect_administration_id": "kap_ref_id(kap_ref_of(json_extract_string(j.suspectEntity, '$[*].instance.reference'), 'MedicationAdministration'))",
            "encounter_id": "kap_ref_id(j.encounter.reference)", "version_id": "vid"})}
        WHEN rtype = 'Consent' THEN {_obj({
            "consent_id": "rid", "status": "status",
            "category": "j.category[1].coding[1].code", "version_id": "vid"})}
        WHEN rtype = 'QuestionnaireResponse' THEN {_obj({
            "response_id": "rid", "questionnaire": "j.questionnaire",
            "instrument": "CASE WHEN regexp_matches(lower(j.questionnaire), 'phq-?9') THEN 'phq9' WHEN regexp_matches(lower(j.questionnaire), 'gad-?7') THEN 'gad7' WHEN regexp_matches(lower(j.questionnaire), 'pcl-?5') THEN 'pcl5' ELSE 'other' END",
            "item_count": "coalesce(json_array_length(j.item), 0)",
            "total_score": "CASE WHEN len(answer_nums) > 0 AND list_count(answer_nums) = len(answer_nums) THEN list_sum(answer_nums) END",
            "status": "status", "version_id": "vid"})}
        WHEN rtype = 'DocumentReference' THEN {_obj({
            "document_id": "rid", "type_code": f"coalesce(kap_code_in(kap_sc(j.type), '{LOINC}'), kap_codes(kap_sc(j.type))[1])",
            "status": "status", "content_type": "json_extract_string(j.content, '$[0].attachment.contentType')",
            "content_length": "coalesce(TRY_CAST(json_extract_string(j.content, '$[0].attachment.size') AS BIGINT), "
                              "(length(json_extract_string(j.content, '$[0].attachment.data')) * 3) // 4 "
                              "- length(regexp_extract(json_extract_string(j.content, '$[0].attachment.data'), '=*$')))",
            "version_id": "vid"})}
        WHEN rtype = 'Practitioner' THEN {_obj({
            "staff_id": "rid",
            "identifiers": "list_transform(json_extract(j.identifier, '$[*]'), lambda i: coalesce(i->>'$.system', '') || '|' || (i->>'$.value'))",
            "qualification_role": _qualification_role("staff_quals"),
            "is_active": "coalesce(j.active, 'true') <> 'false'", "version_id": "vid"})}
        WHEN rtype = 'PractitionerRole' THEN {_obj({
            "role_id": "rid", "staff_ref": "staff_ref",
            "clinic_id": "kap_ref_id(j.organization.reference)",
            "role": f"coalesce({_staff_role_case('sc', 0)}, 'other')",
            "role_source": f"coalesce({_staff_role_case('sc', 1)}, CASE WHEN len(sc) > 0 THEN 'unmapped' ELSE 'none' END)",
            "role_code": _staff_role_case("sc", 2),
            "is_active": "coalesce(j.active, 'true') <> 'false'",
            "start_at": f"{iso}(kap_ts(j.period.start))", "end_at": f"{iso}(end_at)", "version_id": "vid"})}
    END"""
    payload = _prune_branches(payload, types)

    cols = select_columns({
        "line_number": "line_number",
        "ignored": "coalesce(chk.r = '__ignored__', false)",
        "reason": "CASE WHEN chk.r = '__retry__' OR NOT starts_with(chk.r, '__') THEN chk.r END",
        "detail": "CASE WHEN chk.r = '__retry__' OR NOT starts_with(chk.r, '__') THEN chk.d END",
        "event_type": event_type,
        "source_record_id": "rtype || '/' || rid",
        "version_key": "coalesce('v:' || vid, 'u:' || kap_iso(lu), 'h:' || md5(line))",
        "ref_kind": "CASE WHEN rtype = 'Patient' THEN 'fhir' ELSE coalesce(kap_ref_kind(pref), CASE WHEN pref_mrn IS NOT NULL THEN 'mrn' END) END",
        "ref_value": "CASE WHEN rtype = 'Patient' THEN rid ELSE coalesce(kap_ref_value(pref), pref_mrn) END",
        "needs_patient": "rtype NOT IN ('Patient', 'Organization', 'Location', 'Practitioner', 'PractitionerRole') AND NOT (retract AND pref IS NULL AND pref_mrn IS NULL)",
        "occurred_at": "coalesce(occurred_at, lu, $known_at)",
        "recorded_at": "coalesce(lu, $known_at)",
        "check_time": "(occurred_at IS NOT NULL AND NOT retract)",
        "payload": payload,
        "key_fhir_id": "CASE WHEN rtype = 'Patient' AND NOT retract THEN rid END",
        "key_mrn": "CASE WHEN rtype = 'Patient' AND NOT retract THEN mrn END",
        "birth_year": "CASE WHEN rtype = 'Patient' THEN birth_year END",
        "local_clock": "NOT retract AND (kap_naive_ts(occurred_raw) OR kap_naive_ts(end_raw))",
    })
    return f"""
WITH parsed AS (
    SELECT line_number, line, ok, (ok AND regexp_matches(line, '^\\s*\\{{')) AS is_obj,
           json_transform(CASE WHEN ok THEN line END, {structure}) AS j
    FROM (SELECT line_number, line, json_valid(line) AS ok FROM _kap_lines)
), base AS (
    SELECT *,
        j.resourceType AS rtype, j.id AS rid, j.meta.versionId AS vid, j.meta.lastUpdated AS lu_raw,
        kap_ts(j.meta.lastUpdated) AS lu, j.status AS status, j.code AS code,
        (j.status = 'entered-in-error'
         OR json_extract_string(j.verificationStatus, '$.coding[0].code') = 'entered-in-error') AS retract_,
        CASE j.resourceType
            WHEN 'Appointment' THEN kap_ref_of(json_extract_string(j.participant, '$[*].actor.reference'), 'Patient')
            WHEN 'EpisodeOfCare' THEN j.patient.reference
            WHEN 'Consent' THEN j.patient.reference
            ELSE j.subject.reference END AS pref,
        CASE WHEN j.resourceType IN ('EpisodeOfCare', 'Consent') THEN j.patient.identifier.value
             ELSE j.subject.identifier.value END AS pref_mrn,
        json_extract_string(j.participant, '$[*].actor.reference') AS part_refs,
        CASE j.resourceType
            WHEN 'Observation' THEN 'effective[x]' WHEN 'Appointment' THEN 'start'
            WHEN 'Encounter' THEN 'period.start' WHEN 'EpisodeOfCare' THEN 'period.start'
            WHEN 'ServiceRequest' THEN 'authoredOn' WHEN 'MedicationAdministration' THEN 'effective[x]'
            WHEN 'AdverseEvent' THEN 'date' WHEN 'QuestionnaireResponse' THEN 'authored' END AS occurred_field,
        CASE j.resourceType
            WHEN 'Observation' THEN coalesce(j.effectiveDateTime, j.effectivePeriod.start, j.effectiveInstant)
            WHEN 'Appointment' THEN j.start
            WHEN 'Encounter' THEN j.period.start WHEN 'EpisodeOfCare' THEN j.period.start
            WHEN 'ServiceRequest' THEN j.authoredOn
            WHEN 'MedicationAdministration' THEN coalesce(j.effectiveDateTime, j.effectivePeriod.start)
            WHEN 'AdverseEvent' THEN j.date WHEN 'Condition' THEN coalesce(j.onsetDateTime, j.recordedDate)
            WHEN 'Consent' THEN j.dateTime WHEN 'QuestionnaireResponse' THEN j.authored
            WHEN 'DocumentReference' THEN j.date END AS occurred_raw,
        CASE j.resourceType
            WHEN 'Observation' THEN j.effectivePeriod."end" WHEN 'Appointment' THEN j."end"
            WHEN 'Encounter' THEN j.period."end" WHEN 'EpisodeOfCare' THEN j.period."end"
            WHEN 'MedicationAdministration' THEN j.effectivePeriod."end"
            WHEN 'PractitionerRole' THEN j.period."end" END AS end_raw,
        CASE j.resourceType
            WHEN 'Observation' THEN kap_sc_typed(j.code) WHEN 'Condition' THEN kap_sc_typed(j.code)
            WHEN 'ServiceRequest' THEN kap_sc_typed(j.code) WHEN 'AdverseEvent' THEN kap_sc(j.event)
            WHEN 'Encounter' THEN kap_sc_list(j.type)
            WHEN 'Appointment' THEN list_concat(kap_sc(j.appointmentType), kap_sc_list(j.serviceType))
            WHEN 'PractitionerRole' THEN list_concat(kap_sc_list(json_extract(line, '$.code')), kap_sc_list(j.specialty))
            ELSE [] END AS sc,
        CASE WHEN j.resourceType = 'PractitionerRole' THEN coalesce(
            kap_ref_id(j.practitioner.reference), nullif(j.practitioner.identifier.value, '')) END AS staff_ref,
        CASE WHEN j.resourceType = 'Practitioner' THEN list_transform(list_concat(
            json_extract_string(j.qualification, '$[*].code.coding[*].code'),
            json_extract_string(j.qualification, '$[*].code.text')),
            lambda q: upper(replace(trim(q), '.', ''))) END AS staff_quals,
        CASE WHEN j.resourceType = 'Patient' THEN
            list_filter(json_extract(j.identifier, '$[*]'),
                        lambda x: list_contains(json_extract_string(x, '$.type.coding[*].code'), 'MR'))[1]->>'$.value'
        END AS mrn,
        j.birthDate AS birth_date, TRY_CAST(left(j.birthDate, 4) AS INTEGER) AS birth_year, j.gender AS gender,
        j.event AS event, j.dataAbsentReason AS dar, j.valueCodeableConcept AS value_cc
    FROM parsed
), typed AS (
    SELECT *, coalesce(retract_, false) AS retract,
        kap_ts(occurred_raw) AS occurred_at, kap_ts(end_raw) AS end_at,
        kap_session_type(sc) AS session_type,
        CASE WHEN rtype = 'Observation' THEN {instrument_case} END AS instrument,
        CASE WHEN rtype = 'Observation' THEN {measure_case} END AS measure,
        (rtype = 'Observation' AND list_contains(sc, '{K}|screening-decision')) AS is_screening,
        CASE WHEN list_contains(kap_sc(value_cc), '{K}|eligible') THEN 'eligible'
             WHEN list_contains(kap_sc(value_cc), '{K}|ineligible') THEN 'ineligible' END AS decision,
        coalesce(j.valueInteger, j.valueQuantity.value, j.valueString) AS value_raw,
        CASE WHEN rtype = 'Observation' AND list_contains(sc, '{LOINC}|85354-9') THEN
            kap_component_value(j.component, '8480-6')
        END AS systolic_raw,
        CASE WHEN rtype = 'Observation' AND list_contains(sc, '{LOINC}|85354-9') THEN
            kap_component_value(j.component, '8462-4')
        END AS diastolic_raw,
        CASE WHEN rtype = 'MedicationAdministration' THEN coalesce(
            j.medicationCodeableConcept,
            list_filter(json_extract(j.contained, '$[*]'),
                        lambda c: '#' || (c->>'$.id') = j.medicationReference.reference)[1]->'$.code') END AS med_sc,
        CASE WHEN rtype = 'MedicationAdministration' THEN
            kap_codes(kap_sc(j.dosage.route)) END AS route_codes_,
        j.dosage.dose.value AS dose_raw,
        CASE WHEN rtype = 'QuestionnaireResponse' THEN list_transform(json_extract(j.item, '$[*].answer[*]'),
            lambda a: coalesce(TRY_CAST(a->>'$.valueInteger' AS DOUBLE), TRY_CAST(a->>'$.valueDecimal' AS DOUBLE),
                          TRY_CAST(a->>'$.valueCoding.code' AS DOUBLE))) END AS answer_nums,
        json_extract_string(list_filter(json_extract(j.extension, '$[*]'),
            lambda e: (e->>'$.url') = 'http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.cancellationDate')[1],
            '$.valueDateTime') AS cancel_ext
    FROM base
), derived AS (
    SELECT *,
        TRY_CAST(value_raw AS DOUBLE) AS value_num,
        TRY_CAST(systolic_raw AS DOUBLE) AS systolic, TRY_CAST(diastolic_raw AS DOUBLE) AS diastolic,
        kap_sc(med_sc) AS med_sc_list,
        CASE WHEN med_sc IS NULL THEN NULL
             WHEN list_has_any(kap_sc(med_sc), ['{RXNORM}|2201623', '{RXNORM}|2201625'])
                  OR regexp_matches(lower(med_sc::VARCHAR), 'esketamine|spravato') THEN 'esketamine'
             WHEN list_contains(kap_sc(med_sc), '{RXNORM}|6130')
                  OR regexp_matches(lower(med_sc::VARCHAR), 'ketamine') THEN 'ketamine'
             ELSE 'other' END AS drug,
        TRY_CAST(dose_raw AS DOUBLE) AS dose_mg
    FROM typed
), routed AS (
    SELECT *, {route_case.replace('route_codes', 'coalesce(route_codes_, [])')} AS route FROM derived
), checked AS (
    SELECT *, {check} AS chk FROM routed
)
SELECT
    {cols}
FROM checked
"""


def quarantine_sql(ctx: Context) -> str:
    return "kap_redact(line)"
