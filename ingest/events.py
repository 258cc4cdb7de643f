"""The event catalogue: every event type the log may hold, its payload fields and its version.

This module is the single source of the catalogue: ingest validates against it, the dbt staging
models read these payload fields, and `docs/events.md` is rendered from it (`kap docs`).
Payloads never carry a direct identifier (DOMAIN.md section 6): no names, MRNs, SSNs, phones,
addresses below 3-digit ZIP, exact birth dates or note text.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    source: str                 # ehr | dosing | notes | any
    from_record: str            # the source record it comes from
    description: str
    payload: dict[str, str] = field(default_factory=dict)   # field -> "type: meaning"


_SESSION = {
    "encounter_id": "string: Encounter.id",
    "appointment_id": "string: Appointment id the encounter fulfils, if any",
    "episode_id": "string: EpisodeOfCare id, if any",
    "clinic_id": "string: clinic (Organization id of serviceProvider)",
    "practitioner_id": "string: Practitioner id (no name)",
    "session_type": "string: consult | preparation | integration | psychotherapy | dosing | discharge | other",
    "status": "string: Encounter.status",
    "encounter_class": "string: AMB (in clinic) | VR (telehealth) | other v3 ActCode",
    "cpt_code": "string: CPT/HCPCS code of Encounter.type, if any",
    "start_at": "timestamp (UTC): period.start",
    "end_at": "timestamp (UTC): period.end",
    "duration_min": "number: minutes between start and end",
    "version_id": "string: meta.versionId",
}

_APPOINTMENT = {
    "appointment_id": "string: Appointment.id",
    "clinic_id": "string: clinic (Location/Organization id among participants)",
    "practitioner_id": "string: Practitioner id among participants",
    "session_type": "string: session type booked (same codes as encounters)",
    "status": "string: Appointment.status as sent",
    "start_at": "timestamp (UTC): Appointment.start",
    "end_at": "timestamp (UTC): Appointment.end",
    "cancelled_at": "timestamp (UTC): when cancelled (R5 cancellationDate extension, else meta.lastUpdated)",
    "cancel_reason": "string: cancelationReason code",
    "version_id": "string: meta.versionId",
}

CATALOGUE: tuple[EventType, ...] = (
    EventType("patient_registered", 1, "ehr", "Patient (first version seen)",
              "A patient known to the EHR. Only non-identifying demographics are kept.",
              {"birth_year": "integer: year of birthDate (the exact date stays out)",
               "gender": "string: administrative gender",
               "state": "string: address state",
               "zip3": "string: first 3 digits of the postal code",
               "clinic_id": "string: managingOrganization id",
               "is_deceased": "boolean: deceasedBoolean or deceasedDateTime present",
               "version_id": "string: meta.versionId",
               "replaced_by_id": "string: Patient.id of the surviving chart (Patient.link replaced-by), if merged",
               "replaces_id": "string: Patient.id of a chart this one replaces (Patient.link replaces), if any"}),
    EventType("patient_updated", 1, "ehr", "Patient (a later version)",
              "A re-exported patient with a new version; same payload as patient_registered.",
              {"birth_year": "integer", "gender": "string", "state": "string", "zip3": "string",
               "clinic_id": "string", "is_deceased": "boolean", "version_id": "string",
               "replaced_by_id": "string", "replaces_id": "string"}),
    EventType("clinic_registered", 1, "ehr", "Organization, Location",
              "A clinic of the network (organisations and locations carry no patient data).",
              {"clinic_id": "string: Organization/Location id", "name": "string: clinic name",
               "state": "string: address state", "resource_type": "string: Organization | Location",
               "time_zone": "string: IANA zone from the FHIR extension http://hl7.org/fhir/StructureDefinition/timezone (valueCode), if sent"}),
    EventType("referral_received", 1, "ehr", "ServiceRequest",
              "A referral or self-referral into the KAP service: the start of the pathway.",
              {"referral_id": "string: ServiceRequest.id", "clinic_id": "string: performer clinic",
               "status": "string: ServiceRequest.status", "code": "string: SNOMED code requested",
               "is_self_referral": "boolean: requester is the patient",
               "authored_at": "timestamp (UTC): authoredOn", "version_id": "string"}),
    EventType("appointment_booked", 1, "ehr", "Appointment (proposed, pending, booked, waitlist)",
              "An appointment on the books.", _APPOINTMENT),
    EventType("appointment_arrived", 1, "ehr", "Appointment (arrived, checked-in)",
              "The patient arrived for the appointment.", _APPOINTMENT),
    EventType("appointment_fulfilled", 1, "ehr", "Appointment (fulfilled)",
              "The appointment took place.", _APPOINTMENT),
    EventType("appointment_cancelled", 1, "ehr", "Appointment (cancelled)",
              "Cancelled; `cancelled_at` tells whether it was a late cancel (< 24 h before start).",
              _APPOINTMENT),
    EventType("appointment_noshow", 1, "ehr", "Appointment (noshow)",
              "The patient did not come.", _APPOINTMENT),
    EventType("encounter_consult", 1, "ehr", "Encounter (intake consult, CPT 90791)",
              "Referral consult and screening visit.", _SESSION),
    EventType("encounter_preparation", 1, "ehr", "Encounter (preparation session)",
              "Preparatory psychotherapy before the first dose.", _SESSION),
    EventType("encounter_dosing", 1, "ehr", "Encounter (dosing session)",
              "The visit in which a dose is given.", _SESSION),
    EventType("encounter_integration", 1, "ehr", "Encounter (integration session)",
              "Psychotherapy integrating a dosing session (same day to 72 h after).", _SESSION),
    EventType("encounter_psychotherapy", 1, "ehr", "Encounter (other psychotherapy)",
              "Psychotherapy that is neither preparation nor integration.", _SESSION),
    EventType("encounter_discharge", 1, "ehr", "Encounter (discharge)",
              "The course is completed and the patient discharged.", _SESSION),
    EventType("encounter_other", 1, "ehr", "Encounter (any other type)",
              "An encounter whose type the pipeline does not classify.", _SESSION),
    EventType("episode_opened", 1, "ehr", "EpisodeOfCare (planned, waitlist, active, onhold)",
              "A course of treatment (one care pathway).",
              {"episode_id": "string: EpisodeOfCare.id", "clinic_id": "string",
               "status": "string: EpisodeOfCare.status", "start_at": "timestamp (UTC): period.start",
               "end_at": "timestamp (UTC): period.end", "version_id": "string"}),
    EventType("episode_closed", 1, "ehr", "EpisodeOfCare (finished, cancelled)",
              "A course of treatment ended.",
              {"episode_id": "string", "clinic_id": "string", "status": "string",
               "start_at": "timestamp (UTC)", "end_at": "timestamp (UTC)", "version_id": "string"}),
    EventType("condition_recorded", 1, "ehr", "Condition",
              "A diagnosis or a contraindication found at screening.",
              {"condition_id": "string", "code_system": "string: snomed | icd10 | other",
               "code": "string", "category": "string: encounter-diagnosis | problem-list-item",
               "clinical_status": "string", "verification_status": "string",
               "is_contraindication": "boolean: code is in the contraindication value set",
               "recorded_at": "timestamp (UTC): recordedDate or onset", "version_id": "string"}),
    EventType("screening_decided", 1, "ehr", "Observation (local code screening-decision)",
              "The eligibility decision after screening.",
              {"observation_id": "string", "decision": "string: eligible | ineligible",
               "reason_code": "string: SNOMED code of the contraindication when ineligible",
               "encounter_id": "string", "status": "string", "version_id": "string"}),
    EventType("assessment_scored", 1, "ehr", "Observation (category survey: PHQ-9, GAD-7, PCL-5, PHQ-2, CADSS, MOAA/S)",
              "A score on a rating scale.",
              {"observation_id": "string", "instrument": "string: phq9 | gad7 | pcl5 | phq2 | cadss | cadss6 | moaas",
               "code": "string: LOINC or local code", "score": "number: total score",
               "status": "string: final | amended | corrected | preliminary",
               "encounter_id": "string", "version_id": "string"}),
    EventType("vital_signs_recorded", 1, "ehr", "Observation (category vital-signs)",
              "Blood pressure (from components), heart rate, SpO2 or weight.",
              {"observation_id": "string", "measure": "string: blood_pressure | heart_rate | spo2 | weight",
               "systolic": "number: mm[Hg] (blood_pressure)", "diastolic": "number: mm[Hg] (blood_pressure)",
               "value": "number: the value for single-valued measures", "unit": "string: UCUM unit",
               "status": "string", "encounter_id": "string", "version_id": "string"}),
    EventType("medication_administered", 1, "ehr", "MedicationAdministration (completed, in-progress)",
              "A ketamine or esketamine dose given, as recorded in the EHR.",
              {"administration_id": "string", "drug": "string: ketamine | esketamine | other",
               "rxnorm_code": "string", "route": "string: IV | IM | IN | SL | PO | other",
               "dose_mg": "number", "status": "string", "start_at": "timestamp (UTC)",
               "end_at": "timestamp (UTC)", "encounter_id": "string", "clinic_id": "string",
               "version_id": "string"}),
    EventType("medication_not_given", 1, "ehr", "MedicationAdministration (not-done, stopped)",
              "A planned dose that was not (fully) given.",
              {"administration_id": "string", "drug": "string", "route": "string",
               "status": "string", "start_at": "timestamp (UTC)", "encounter_id": "string",
               "status_reason": "string: statusReason code", "version_id": "string"}),
    EventType("adverse_event_reported", 1, "ehr", "AdverseEvent",
              "An adverse event, with seriousness and severity.",
              {"adverse_event_id": "string", "event_code": "string: SNOMED code",
               "event_display": "string: coded display (no free text)",
               "seriousness": "string: serious | non-serious", "severity": "string: mild | moderate | severe",
               "suspect_administration_id": "string", "encounter_id": "string", "version_id": "string"}),
    EventType("consent_recorded", 1, "ehr", "Consent",
              "Informed consent for treatment.",
              {"consent_id": "string", "status": "string", "category": "string: code",
               "version_id": "string"}),
    EventType("questionnaire_answered", 1, "ehr", "QuestionnaireResponse",
              "An item-level questionnaire; only counts and the integer total are kept.",
              {"response_id": "string", "questionnaire": "string: canonical URL",
               "instrument": "string: phq9 | gad7 | pcl5 | other", "item_count": "integer",
               "total_score": "number: sum of integer/coded answers, if all numeric",
               "status": "string", "version_id": "string"}),
    EventType("ehr_document_recorded", 1, "ehr", "DocumentReference",
              "A clinical document's metadata. The text itself is never kept.",
              {"document_id": "string", "type_code": "string: LOINC document type",
               "status": "string", "content_type": "string: MIME type",
               "content_length": "integer: decoded bytes", "version_id": "string"}),
    EventType("staff_registered", 1, "ehr", "Practitioner",
              "A member of staff. Only the id, identifiers (to resolve conditional references) and a "
              "role read from the qualification are kept: never a name, telecom or address.",
              {"staff_id": "string: Practitioner.id",
               "identifiers": "list of strings: 'system|value' of Practitioner.identifier (e.g. NPI); "
                              "restricted zone only, never published",
               "qualification_role": "string: prescriber | dosing_clinician | therapist, from "
                                     "Practitioner.qualification (the local fallback), or null",
               "is_active": "boolean: Practitioner.active (absent = true)",
               "version_id": "string: meta.versionId"}),
    EventType("staff_role_recorded", 1, "ehr", "PractitionerRole",
              "A role a member of staff holds at a clinic, mapped to prescriber | dosing_clinician | "
              "therapist | other from its SNOMED occupation, NUCC taxonomy, HL7 role or local code.",
              {"role_id": "string: PractitionerRole.id",
               "staff_ref": "string: the Practitioner it names (id, or identifier value of a conditional "
                            "or logical reference)",
               "clinic_id": "string: organization id",
               "role": "string: prescriber | dosing_clinician | therapist | other",
               "role_source": "string: local | snomed | nucc | hl7 (the code that decided), unmapped "
                              "(codes, none known), none (no code)",
               "role_code": "string: the 'system|code' that decided the role",
               "is_active": "boolean: PractitionerRole.active (absent = true)",
               "start_at": "timestamp (UTC): period.start", "end_at": "timestamp (UTC): period.end",
               "version_id": "string: meta.versionId"}),
    EventType("dose_administered", 1, "dosing", "dosing-log row",
              "A dosing session as the dosing room logged it, with vitals and scales.",
              {"dosing_id": "string", "clinic_id": "string", "route": "string: IV | IM | IN | SL | PO",
               "drug": "string: ketamine | esketamine", "dose_mg": "number", "dose_mg_per_kg": "number",
               "weight_kg": "number", "start_at": "timestamp (UTC)", "end_at": "timestamp (UTC)",
               "monitoring_end_at": "timestamp (UTC)",
               "bp_pre_systolic": "integer", "bp_pre_diastolic": "integer",
               "bp_40min_systolic": "integer", "bp_40min_diastolic": "integer",
               "bp_discharge_systolic": "integer", "bp_discharge_diastolic": "integer",
               "heart_rate_pre": "integer", "spo2_min": "integer", "cadss_total": "integer",
               "moaas_min": "integer", "is_booster": "boolean", "clinician_id": "string",
               "rems_form_submitted_on": "date", "is_amended": "boolean: the row corrects an earlier one",
               "setting": "office, home or telehealth_supervised; null when the log has no setting column"}),
    EventType("therapy_note_documented", 1, "notes", "therapy-note export line",
              "Metadata of a therapy session note; the text is reduced to a hash, a length and tags.",
              {"note_id": "string", "clinic_id": "string", "therapist_id": "string",
               "session_type": "string: consult | preparation | integration | psychotherapy",
               "modality": "string: CBT | MBCT | EMDR | IFS | FAP | ACT | supportive | other",
               "start_at": "timestamp (UTC)", "end_at": "timestamp (UTC)", "duration_min": "number",
               "attended": "boolean", "status": "string: final | amended",
               "text_sha256": "string: sha256 of the note text", "text_length": "integer: characters",
               "tags": "list of strings: codes of current, affirmed mentions found by clinical NLP rules (ingest/note_tags.py), e.g. ae_nausea, ae_dissociation, risk_suicidality"}),
    EventType("record_retracted", 1, "any", "entered-in-error resource, voided dosing row, entered-in-error note",
              "The source withdrew a record: every earlier version of it is void from `recorded_at` on.",
              {"retracted_resource": "string: resource type or source record kind",
               "reason": "string: entered-in-error | void"}),
)

BY_NAME: dict[str, EventType] = {e.name: e for e in CATALOGUE}


def render_markdown() -> str:
    """docs/events.md, generated from the catalogue above."""
    lines = [
        "# Event catalogue",
        "",
        "Generated from `ingest/events.py` by `kap docs`; do not edit by hand.",
        "",
        "Every accepted source record becomes one event in `raw.events`. A correction is a later",
        "event with the same `source` and `source_record_id` and a later `recorded_at`; a retraction",
        "is a `record_retracted` event. Payloads never hold a direct identifier.",
        "",
        "Timestamps are UTC. A record whose clinical times came without a UTC offset also carries",
        "`time_zone_assumed` (string: the IANA zone of its clinic they were read in; ingest/clocks.py).",
        "",
        "| event type | version | source | from | meaning |",
        "|---|---|---|---|---|",
    ]
    for e in CATALOGUE:
        lines.append(f"| `{e.name}` | {e.version} | {e.source} | {e.from_record} | {e.description} |")
    for e in CATALOGUE:
        lines += ["", f"## `{e.name}` (v{e.version})", "", e.description, "",
                  "| payload field | type and meaning |", "|---|---|"]
        lines += [f"| `{k}` | {v} |" for k, v in e.payload.items()]
    return "\n".join(lines) + "\n"
