"""FHIR R4 resources for the network and for one patient's story (docs/inputs.md, 'FHIR R4 resources read')."""
from __future__ import annotations

import base64
import datetime as dt
import random
from typing import Callable

from .common import (CANCEL_REASON, CANCELLATION_DATE_EXT, CONDITION_CATEGORY, CONDITION_CLINICAL,
                     CONDITION_VERIFICATION, CPT, DL_SYSTEM, HCPCS, KAP, LOINC, MRN_SYSTEM, NPI_SYSTEM,
                     OBS_CATEGORY, RXNORM, SNOMED, SSN_SYSTEM, TIMEZONE_EXTENSION, UCUM, V2_0203, V3_ACT,
                     coding, concept, slot, ts)
from .dosing import Dose
from .model import DIAGNOSES, Assessment, Episode, Session, Story
from .network import Clinic, Network, Staff
from .notes import document_text

Emit = Callable[[dict], None]

ROUTE_SNOMED = {"IV": ("47625008", "Intravenous route"), "IM": ("78421000", "Intramuscular route"),
                "IN": ("46713006", "Nasal route"), "SL": ("37161004", "Sublingual route"),
                "PO": ("26643006", "Oral route")}
SCALE_LOINC = {"phq9": ("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]", "PHQ-9"),
               "gad7": ("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]", "GAD-7"),
               "pcl5": ("101698-9", "PTSD checklist for DSM-5 (PCL-5) total score", "PCL-5"),
               "phq2": ("55758-7", "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]", "PHQ-2")}
PHQ9_ITEMS = (("44250-9", "Little interest or pleasure in doing things"),
              ("44255-8", "Feeling down, depressed, or hopeless"),
              ("44259-0", "Trouble falling or staying asleep, or sleeping too much"),
              ("44254-1", "Feeling tired or having little energy"),
              ("44251-7", "Poor appetite or overeating"),
              ("44258-2", "Feeling bad about yourself"),
              ("44252-5", "Trouble concentrating on things"),
              ("44253-3", "Moving or speaking so slowly that other people could have noticed"),
              ("44260-8", "Thoughts that you would be better off dead, or of hurting yourself"))
ICD10 = {"mdd": ("F33.2", "Major depressive disorder, recurrent severe without psychotic features"),
         "ptsd": ("F43.10", "Post-traumatic stress disorder, unspecified"),
         "gad": ("F41.1", "Generalized anxiety disorder")}
_CPT_THERAPY = ((37, "90832"), (52, "90834"), (10_000, "90837"))


def meta(version: int, updated: dt.datetime, offset: str) -> dict:
    return {"versionId": str(version), "lastUpdated": ts(updated, offset)}


def _quantity(value: float, unit: str, code: str | None = None) -> dict:
    return {"value": value, "unit": unit, "system": UCUM, "code": code or unit}


def _name(given: str, family: str, middle: str | None = None, suffix: str | None = None) -> list[dict]:
    n: dict = {"use": "official", "family": family, "given": [given] + ([middle] if middle else [])}
    if suffix:
        n["suffix"] = [suffix]
    return [n]


def network_resources(net: Network, start: dt.date) -> list[dict]:
    """Organization + Location per clinic (same id), every Practitioner and one PractitionerRole each."""
    out: list[dict] = []
    when = dt.datetime.combine(start - dt.timedelta(days=90), dt.time(9))
    for i, c in enumerate(net.clinics):
        address = [{"use": "work", "line": [c.street], "city": c.city, "state": c.state, "postalCode": c.zip,
                    "country": "US"}]
        # the clinic's time zone: on the Organization, for every other clinic on its Location
        zone = [{"url": TIMEZONE_EXTENSION, "valueCode": c.time_zone}]
        phone = [{"system": "phone", "value": f"({c.area_code}) 555-01{int(c.id[-2:]):02d}", "use": "work"}]
        out.append({"resourceType": "Organization", "id": c.id, "meta": meta(1, when, c.offset),
                    "identifier": [{"system": "urn:kap:clinic", "value": c.id}], "active": True,
                    "type": [concept("http://terminology.hl7.org/CodeSystem/organization-type", "prov",
                                     "Healthcare Provider")],
                    "name": c.name, "telecom": phone, "address": address,
                    **({"extension": zone} if i % 2 == 0 else {})})
        out.append({"resourceType": "Location", "id": c.id, "meta": meta(1, when, c.offset), "status": "active",
                    "name": c.name, "mode": "instance",
                    "type": [concept("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "PSY",
                                     "Psychiatry clinic")],
                    "telecom": phone, "address": address[0],
                    "managingOrganization": {"reference": f"Organization/{c.id}"},
                    **({"extension": zone} if i % 2 == 1 else {})})
    for s in net.staff():
        off = next((c.offset for c in net.clinics if c.id == s.clinic_id), "-05:00")
        out.append({"resourceType": "Practitioner", "id": s.id, "meta": meta(1, when, off),
                    "identifier": [{"system": NPI_SYSTEM, "value": s.npi}], "active": True,
                    "name": _name(s.given, s.family, suffix=s.qualification), "gender": s.gender,
                    "qualification": [{"code": {"text": s.qualification}}]})
    for s in net.staff():
        off = next((c.offset for c in net.clinics if c.id == s.clinic_id), "-05:00")
        role: dict = {"resourceType": "PractitionerRole", "id": f"role-{s.id}", "meta": meta(1, when, off),
                      "active": True, "practitioner": {"reference": f"Practitioner/{s.id}"}}
        if s.clinic_id is not None:
            role["organization"] = {"reference": f"Organization/{s.clinic_id}"}
        code, specialty = _ROLE_CODES[(s.role, s.qualification)]
        if code:
            role["code"] = [concept(*code)]
        if specialty:
            role["specialty"] = [concept(*specialty)]
        out.append(role)
    return out


_SCT = "http://snomed.info/sct"
_NUCC = "http://nucc.org/provider-taxonomy"
_HL7_ROLE = "http://terminology.hl7.org/CodeSystem/practitioner-role"
# (role, qualification) -> (PractitionerRole.code, .specialty): the code styles real EHRs send -
# SNOMED CT occupations, NUCC taxonomy only, an HL7 role code, or only the local code system.
_ROLE_CODES: dict[tuple[str, str], tuple[tuple | None, tuple | None]] = {
    ("prescriber", "MD"): ((_SCT, "80584001", "Psychiatrist"), (_NUCC, "2084P0800X", "Psychiatry")),
    ("prescriber", "DO"): ((_SCT, "80584001", "Psychiatrist"), (_NUCC, "2084P0800X", "Psychiatry")),
    ("prescriber", "NP"): ((_SCT, "224571005", "Nurse practitioner"),
                           (_NUCC, "363LP0808X", "Nurse Practitioner, Psych/Mental Health")),
    ("prescriber", "CRNA"): ((KAP, "prescriber", "Prescriber"), (_NUCC, "367500000X", "Nurse Anesthetist, Certified Registered")),
    ("dosing_nurse", "RN"): ((_SCT, "224535009", "Registered nurse"), (_NUCC, "163W00000X", "Registered Nurse")),
    ("dosing_nurse", "CRNA"): (None, (_NUCC, "367500000X", "Nurse Anesthetist, Certified Registered")),
    ("therapist", "PhD"): ((_SCT, "59944000", "Psychologist"), (_NUCC, "103TC0700X", "Psychologist, Clinical")),
    ("therapist", "PsyD"): ((_SCT, "59944000", "Psychologist"), None),
    ("therapist", "LCSW"): (None, (_NUCC, "1041C0700X", "Social Worker, Clinical")),
    ("therapist", "LMFT"): (None, (_NUCC, "106H00000X", "Marriage & Family Therapist")),
    ("therapist", "LPC"): ((KAP, "therapist", "Therapist"), None),
    ("referrer", "MD"): ((_HL7_ROLE, "doctor", "Doctor"), None),
    ("referrer", "DO"): ((_HL7_ROLE, "doctor", "Doctor"), None),
    ("referrer", "NP"): ((_SCT, "224571005", "Nurse practitioner"), None),
}


class PatientFhir:
    """Turns one Story into resources, skipping everything after the export cutoff."""

    def __init__(self, story: Story, rng: random.Random, cutoff: dt.datetime, emit: Emit) -> None:
        self.st = story
        self.rng = rng
        self.cutoff = cutoff
        self.emit = emit
        self.c: Clinic = story.clinic
        self.off = story.clinic.offset
        self.pid = f"{story.person.index + 1:06d}"
        self.counters: dict[str, int] = {}
        self.ids: dict[int, str] = {}   # id(Session) -> Encounter id
        self.ma_ids: dict[int, str] = {}

    # --- helpers -------------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        n = self.counters.get(prefix, 0) + 1
        self.counters[prefix] = n
        return f"{prefix}-{self.pid}-{n:03d}"

    def t(self, when: dt.datetime) -> str:
        return ts(when, self.off)

    def patient_ref(self) -> dict:
        # a small share of conditional references, as some EHRs export them
        if self.rng.random() < 0.03:
            return {"reference": f"Patient?identifier={MRN_SYSTEM}|{self.st.person.mrn}"}
        return {"reference": f"Patient/{self.st.person.id}"}

    def staff_ref(self, s: Staff) -> dict:
        if s.role == "referrer" and self.rng.random() < 0.3:
            return {"reference": f"Practitioner?identifier={NPI_SYSTEM}|{s.npi}"}
        return {"reference": f"Practitioner/{s.id}"}

    def lag(self, when: dt.datetime, lo: int = 2, hi: int = 45) -> dt.datetime:
        return when + dt.timedelta(minutes=self.rng.randint(lo, hi))

    # --- the story -----------------------------------------------------------------------------
    def write(self) -> None:
        st = self.st
        self.patient()
        self.history()
        self.referral()
        for s in st.sessions:
            if s.start > self.cutoff:
                continue
            self.session(s)
            if s is st.consult:
                # diagnoses, contraindication and the decision belong to the consult encounter
                for key in st.diagnoses:
                    self.condition(DIAGNOSES[key], key, s, contraindication=False)
                if st.contraindication:
                    self.condition(st.contraindication, None, s, contraindication=True)
                self.screening(s)
        for ep in st.episodes:
            self.episode(ep)
            if ep.consent_at is not None and ep.consent_at <= self.cutoff:
                self.consent(ep)
        for a in st.portal_assessments:
            if a.at <= self.cutoff:
                self.assessment(a, None)

    def history(self) -> None:
        """The rest of an EHR record, before the referral: some patients' primary-care check-ups
        (and a PHQ-9 screen there), a few a birth encounter. None of it is KAP care."""
        rng, st = self.rng, self.st
        if rng.random() < 0.03:
            born = dt.datetime.combine(st.person.birth_date, dt.time(rng.randint(0, 23), 15 * rng.randint(0, 3)))
            self._history_encounter(born, 60 * 24 * 2, "169836001", "Birth")
        if rng.random() >= 0.3:
            return
        for years in sorted(rng.sample(range(1, 9), rng.randint(1, 4)), reverse=True):
            when = slot(rng, (st.referral_at - dt.timedelta(days=365 * years + rng.randint(0, 200))).date(), 8, 16)
            self._history_encounter(when, 30, "185349003", "Encounter for check up")
            if years <= 3 and rng.random() < 0.3:
                self.emit({"resourceType": "Observation", "id": self.new_id("hobs"),
                           "meta": meta(1, self.lag(when), self.off), "status": "final",
                           "category": [concept(OBS_CATEGORY, "survey", "Survey")],
                           "code": concept(LOINC, "44261-6", "PHQ-9 total score"),
                           "subject": self.patient_ref(), "effectiveDateTime": self.t(when + dt.timedelta(minutes=10)),
                           "valueInteger": rng.randint(2, 14)})

    def _history_encounter(self, start: dt.datetime, minutes: int, code: str, display: str) -> None:
        self.emit({"resourceType": "Encounter", "id": self.new_id("henc"),
                   "meta": meta(1, self.lag(start + dt.timedelta(minutes=minutes)), self.off), "status": "finished",
                   "class": {"system": V3_ACT, "code": "IMP" if code == "169836001" else "AMB"},
                   "type": [concept(SNOMED, code, display)], "subject": self.patient_ref(),
                   "period": {"start": self.t(start), "end": self.t(start + dt.timedelta(minutes=minutes))}})

    def eoc_id(self, ep: Episode) -> str:
        return f"eoc-{self.pid}-{ep.number}"

    def patient(self) -> None:
        p, st = self.st.person, self.st
        ident = [{"use": "usual", "type": {"coding": [coding(V2_0203, "MR", "Medical record number")],
                                           "text": "MRN"},
                  "system": MRN_SYSTEM, "value": p.mrn, "assigner": {"reference": f"Organization/{self.c.id}"}},
                 {"type": {"coding": [coding(V2_0203, "SS", "Social Security number")]},
                  "system": SSN_SYSTEM, "value": p.ssn}]
        if p.driver_licence:
            ident.append({"type": {"coding": [coding(V2_0203, "DL", "Driver's license number")]},
                          "system": DL_SYSTEM, "value": p.driver_licence})
        res = {"resourceType": "Patient", "id": p.id, "meta": meta(1, st.referral_at, self.off),
               "identifier": ident, "active": True, "name": _name(p.given, p.family, p.middle),
               "telecom": [{"system": "phone", "value": p.phone, "use": "mobile"},
                           {"system": "email", "value": p.email, "use": "home"}],
               "gender": p.gender, "birthDate": p.birth_date.isoformat(),
               "address": [{"use": "home", "type": "both", "line": [p.street], "city": p.city, "state": p.state,
                            "postalCode": p.zip, "country": "US"}],
               "managingOrganization": {"reference": f"Organization/{self.c.id}"}}
        self.emit(res)

    def referral(self) -> None:
        st = self.st
        requester = ({"reference": f"Patient/{st.person.id}"} if st.self_referral else self.staff_ref(st.referrer))
        done = st.consult is not None and st.consult.start <= self.cutoff
        updated = st.consult.start if done and st.consult else st.referral_at
        self.emit({"resourceType": "ServiceRequest", "id": f"sr-{self.pid}",
                   "meta": meta(2 if done else 1, updated, self.off),
                   "status": "completed" if done else "active", "intent": "order",
                   "category": [concept(SNOMED, "3457005", "Patient referral")],
                   "code": concept(SNOMED, "3457005", "Patient referral",
                                   "Referral for ketamine-assisted psychotherapy"),
                   "subject": self.patient_ref(), "authoredOn": self.t(st.referral_at),
                   "requester": requester, "performer": [{"reference": f"Organization/{self.c.id}"}],
                   "reasonCode": [concept(SNOMED, *DIAGNOSES[st.diagnoses[0]])]})

    def condition(self, code: tuple[str, str], key: str | None, consult: Session, contraindication: bool) -> None:
        st = self.st
        when = st.diagnosed_at
        assert when is not None
        if when > self.cutoff:
            return
        cc: dict = {"coding": [coding(SNOMED, code[0], code[1])], "text": code[1]}
        if key is not None:
            cc["coding"].append(coding("http://hl7.org/fhir/sid/icd-10-cm", *ICD10[key]))
        years = self.rng.uniform(0.3, max(0.5, min(12.0, st.person.age - 17)))
        res = {"resourceType": "Condition", "id": self.new_id("cond"), "meta": meta(1, self.lag(when), self.off),
               "clinicalStatus": concept(CONDITION_CLINICAL, "active"),
               "verificationStatus": concept(CONDITION_VERIFICATION, "confirmed"),
               "category": [concept(CONDITION_CATEGORY,
                                    "problem-list-item" if contraindication else "encounter-diagnosis")],
               "code": cc, "subject": self.patient_ref(),
               "encounter": {"reference": f"Encounter/{self.ids[id(consult)]}"} if id(consult) in self.ids else None,
               "onsetDateTime": (when - dt.timedelta(days=int(365 * years))).date().isoformat(),
               "recordedDate": self.t(when), "recorder": self.staff_ref(consult.practitioner)}
        if res["encounter"] is None:
            del res["encounter"]
        self.emit(res)

    def episode(self, ep: Episode) -> None:
        if ep.start > self.cutoff:
            return
        version, updated = 1, ep.start
        period = {"start": self.t(ep.start)}
        status = "active"
        if ep.first_dose is not None and ep.first_dose <= self.cutoff:
            version, updated = 2, ep.first_dose
        if ep.end is not None and ep.end <= self.cutoff and ep.end_status:
            version, updated, status = version + 1, ep.end, ep.end_status
            period["end"] = self.t(ep.end)
        self.emit({"resourceType": "EpisodeOfCare", "id": self.eoc_id(ep),
                   "meta": meta(version, self.lag(updated), self.off), "status": status,
                   "type": [concept(KAP, "kap-course", "Ketamine-assisted psychotherapy course")],
                   "diagnosis": [{"condition": {"reference": f"Condition/cond-{self.pid}-001"}, "rank": 1}],
                   "patient": self.patient_ref(), "managingOrganization": {"reference": f"Organization/{self.c.id}"},
                   "period": period, "careManager": self.staff_ref(self.st.prescriber)})

    def consent(self, ep: Episode) -> None:
        assert ep.consent_at is not None
        self.emit({"resourceType": "Consent", "id": self.new_id("consent"),
                   "meta": meta(1, self.lag(ep.consent_at), self.off), "status": "active",
                   "scope": concept("http://terminology.hl7.org/CodeSystem/consentscope", "treatment", "Treatment"),
                   "category": [concept(LOINC, "59284-0", "Patient Consent"),
                                concept(KAP, "kap-informed-consent", "Informed consent for KAP")],
                   "patient": self.patient_ref(), "dateTime": self.t(ep.consent_at),
                   "performer": [{"reference": f"Patient/{self.st.person.id}"}],
                   "organization": [{"reference": f"Organization/{self.c.id}"}],
                   "policyRule": concept(V3_ACT, "OPTIN", "opt-in"),
                   "provision": {"type": "permit", "period": {"start": self.t(ep.consent_at)}}})

    # --- sessions ------------------------------------------------------------------------------
    def session_types(self, s: Session) -> list[dict]:
        kap = concept(KAP, s.kind, s.kind.capitalize() + " session")
        other: dict | None = None
        if s.kind == "consult":
            other = concept(CPT, "90791", "Psychiatric diagnostic evaluation")
        elif s.kind in ("preparation", "integration", "psychotherapy"):
            code = next(c for limit, c in _CPT_THERAPY if s.minutes <= limit)
            other = concept(CPT, code, "Psychotherapy")
        elif s.kind == "dosing" and s.dose is not None:
            if s.dose.route == "IN":
                other = concept(HCPCS, s.dose.hcpcs or "G2082", "Esketamine nasal self-administration with observation")
            elif s.dose.route == "IV":
                other = concept(CPT, "96365", "IV infusion, initial, up to 1 hour")
            elif s.dose.route == "IM":
                other = concept(CPT, "96372", "Therapeutic injection, IM")
        # some EHRs send only the billing code where that code decides the session type on its own
        billing_decides = s.kind in ("consult", "psychotherapy") or (
            s.kind == "dosing" and s.dose is not None and s.dose.route in ("IN", "IV"))
        if other is not None and billing_decides and self.rng.random() < 0.15:
            return [other]
        return [kap] + ([other] if other is not None else [])

    def session(self, s: Session) -> None:
        st = self.st
        apt_id = self.new_id("apt")
        appt: dict = {"resourceType": "Appointment", "id": apt_id}
        version, updated = 1, s.booked_at
        extension = None
        if s.status == "fulfilled":
            version, updated = 3, self.lag(s.end, 1, 20)
        elif s.status == "noshow":
            version, updated = 2, self.lag(s.start, 15, 90)
        elif s.status == "cancelled":
            assert s.cancelled_at is not None
            version, updated = 2, s.cancelled_at
            if self.rng.random() < 0.4:
                # the R5 extension carries the cancellation; the version was touched again later
                extension = [{"url": CANCELLATION_DATE_EXT, "valueDateTime": self.t(s.cancelled_at)}]
                updated = s.cancelled_at + dt.timedelta(hours=self.rng.randint(1, 30))
        appt["meta"] = meta(version, min(updated, self.cutoff), self.off)
        if extension:
            appt["extension"] = extension
        appt["status"] = s.status
        if s.cancel_reason:
            appt["cancelationReason"] = concept(CANCEL_REASON, s.cancel_reason)
        appt["appointmentType"] = concept(KAP, s.kind, s.kind.capitalize())
        appt["start"] = self.t(s.start)
        appt["end"] = self.t(s.end)
        appt["minutesDuration"] = s.minutes
        appt["created"] = self.t(s.booked_at)
        appt["participant"] = [
            {"actor": {"reference": f"Patient/{st.person.id}", "display": f"{st.person.given} {st.person.family}"},
             "required": "required", "status": "accepted"},
            {"actor": self.staff_ref(s.practitioner), "required": "required", "status": "accepted"},
            {"actor": {"reference": f"Location/{self.c.id}"}, "required": "required", "status": "accepted"}]
        if self.rng.random() < 0.03:
            appt["participant"][0]["actor"] = {"reference": f"Patient?identifier={MRN_SYSTEM}|{st.person.mrn}"}
        self.emit(appt)
        if s.status != "fulfilled":
            return
        enc_id = self.new_id("enc")
        self.ids[id(s)] = enc_id
        enc: dict = {"resourceType": "Encounter", "id": enc_id, "meta": meta(2, self.lag(s.end, 5, 60), self.off),
                     "status": "finished",
                     "class": coding(V3_ACT, "VR", "virtual") if s.telehealth else coding(V3_ACT, "AMB", "ambulatory"),
                     "type": self.session_types(s), "subject": self.patient_ref(),
                     "participant": [{"type": [concept("http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                                       "PPRF", "primary performer")],
                                      "individual": self.staff_ref(s.practitioner)}],
                     "appointment": [{"reference": f"Appointment/{apt_id}"}],
                     "period": {"start": self.t(s.start), "end": self.t(s.end)}}
        if s.episode is not None:
            enc["episodeOfCare"] = [{"reference": f"EpisodeOfCare/{self.eoc_id(s.episode)}"}]
        enc["serviceProvider"] = {"reference": f"Organization/{self.c.id}"}
        enc["location"] = [{"location": {"reference": f"Location/{self.c.id}"}}]
        self.emit(enc)
        for a in s.assessments:
            self.assessment(a, enc_id)
        if s.screening_vitals is not None:
            bp, hr, weight = s.screening_vitals
            at = s.start + dt.timedelta(minutes=10)
            self.bp(bp, at, enc_id)
            self.vital("8867-4", "Heart rate", hr, "/min", at, enc_id)
            self.vital("29463-7", "Body weight", weight, "kg", at, enc_id)
        if s.dose is not None:
            self.dose(s, s.dose, enc_id)
        if s.document is not None:
            self.document(s, enc_id)

    def screening(self, consult: Session) -> None:
        st = self.st
        at = st.decision_at
        if at is None or at > self.cutoff:
            return
        eligible = st.contraindication is None
        res: dict = {"resourceType": "Observation", "id": self.new_id("obs"), "meta": meta(1, self.lag(at), self.off),
                     "status": "final", "category": [concept(OBS_CATEGORY, "exam", "Exam")],
                     "code": concept(KAP, "screening-decision", "KAP screening decision"),
                     "subject": self.patient_ref()}
        if id(consult) in self.ids:
            res["encounter"] = {"reference": f"Encounter/{self.ids[id(consult)]}"}
        res["effectiveDateTime"] = self.t(at)
        res["performer"] = [self.staff_ref(consult.practitioner)]
        res["valueCodeableConcept"] = concept(KAP, "eligible" if eligible else "ineligible",
                                              "Eligible" if eligible else "Ineligible")
        if not eligible:
            assert st.contraindication is not None
            why = concept(SNOMED, *st.contraindication)
            if self.c.interpretation_style:
                res["interpretation"] = [why]
            else:
                res["component"] = [{"code": concept(KAP, "contraindication", "Contraindication"),
                                     "valueCodeableConcept": why}]
        self.emit(res)

    # --- observations --------------------------------------------------------------------------
    def _obs(self, category: str, code: dict, at: dt.datetime, enc_id: str | None) -> dict:
        res: dict = {"resourceType": "Observation", "id": self.new_id("obs"),
                     "meta": meta(1, self.lag(at), self.off), "status": "final",
                     "category": [concept(OBS_CATEGORY, category,
                                          "Vital Signs" if category == "vital-signs" else "Survey")],
                     "code": code, "subject": self.patient_ref()}
        if enc_id is not None:
            res["encounter"] = {"reference": f"Encounter/{enc_id}"}
        res["effectiveDateTime"] = self.t(at)
        return res

    def assessment(self, a: Assessment, enc_id: str | None) -> None:
        code, display, text = SCALE_LOINC[a.instrument]
        qr_id = None
        if a.items is not None:
            qr_id = self.new_id("qr")
            qr: dict = {"resourceType": "QuestionnaireResponse", "id": qr_id, "meta": meta(1, a.at, self.off),
                        "questionnaire": "http://loinc.org/q/44249-1", "status": "completed",
                        "subject": self.patient_ref()}
            if enc_id:
                qr["encounter"] = {"reference": f"Encounter/{enc_id}"}
            qr["authored"] = self.t(a.at)
            qr["source"] = {"reference": f"Patient/{self.st.person.id}"}
            qr["item"] = [{"linkId": link, "text": q, "answer": [{"valueInteger": v}]}
                          for (link, q), v in zip(PHQ9_ITEMS, a.items)]
            self.emit(qr)
        res = self._obs("survey", concept(LOINC, code, display, text), a.at, enc_id)
        if self.rng.random() < 0.2:
            res["valueQuantity"] = _quantity(a.score, "{score}")
        else:
            res["valueInteger"] = a.score
        if qr_id:
            res["derivedFrom"] = [{"reference": f"QuestionnaireResponse/{qr_id}"}]
        self.emit(res)

    def bp(self, bp: tuple[int, int], at: dt.datetime, enc_id: str) -> None:
        res = self._obs("vital-signs", concept(LOINC, "85354-9", "Blood pressure panel with all children optional",
                                               "Blood pressure"), at, enc_id)
        res["component"] = [
            {"code": concept(LOINC, "8480-6", "Systolic blood pressure"), "valueQuantity": _quantity(bp[0], "mm[Hg]")},
            {"code": concept(LOINC, "8462-4", "Diastolic blood pressure"), "valueQuantity": _quantity(bp[1], "mm[Hg]")}]
        self.emit(res)

    def vital(self, code: str, display: str, value: float, unit: str, at: dt.datetime, enc_id: str) -> None:
        cc = concept(LOINC, code, display)
        if code == "59408-5":
            cc["coding"].append(coding(LOINC, "2708-6", "Oxygen saturation in Arterial blood"))
        res = self._obs("vital-signs", cc, at, enc_id)
        res["valueQuantity"] = _quantity(value, unit)
        self.emit(res)

    def local_score(self, code: str, display: str, value: int, at: dt.datetime, enc_id: str) -> None:
        res = self._obs("survey", concept(KAP, code, display), at, enc_id)
        res["valueInteger"] = value
        self.emit(res)

    # --- doses ---------------------------------------------------------------------------------
    def dose(self, s: Session, d: Dose, enc_id: str) -> None:
        if not d.in_ehr:
            # the dose and its vitals live in the dosing log; adverse events are still charted
            for code, display, severity, serious in d.adverse:
                self.adverse(s, d, enc_id, code, display, severity, serious)
            return
        ma_id = self.new_id("ma")
        self.ma_ids[id(d)] = ma_id
        if d.drug == "esketamine":
            med = (concept(RXNORM, "2201625", "Spravato 28 MG Nasal Spray", "Spravato (esketamine) nasal spray")
                   if self.rng.random() < 0.1 else
                   concept(RXNORM, "2201623", "esketamine 28 MG Nasal Spray", "esketamine nasal spray"))
        elif self.rng.random() < 0.1:
            med = {"text": "Ketamine HCl 50 mg/mL injection" if d.route in ("IV", "IM") else "Ketamine troche"}
        else:
            med = concept(RXNORM, "6130", "ketamine", "ketamine")
        res: dict = {"resourceType": "MedicationAdministration", "id": ma_id,
                     "meta": meta(1, self.lag(d.monitoring_end), self.off),
                     "status": "completed" if d.given else "not-done"}
        if not d.given:
            res["statusReason"] = [concept(KAP, d.not_given_reason or "other",
                                           "Pre-dose blood pressure above threshold")]
        res["medicationCodeableConcept"] = med
        res["subject"] = self.patient_ref()
        res["context"] = {"reference": f"Encounter/{enc_id}"}
        if d.route == "IV" and d.end is not None:
            res["effectivePeriod"] = {"start": self.t(d.start), "end": self.t(d.end)}
        else:
            res["effectiveDateTime"] = self.t(d.start)
        res["performer"] = [{"actor": self.staff_ref(s.practitioner)}]
        dosage = {"route": concept(SNOMED, *ROUTE_SNOMED[d.route]), "dose": _quantity(d.mg, "mg")}
        if d.route == "IV":
            dosage["text"] = f"{d.mg_per_kg:.2f} mg/kg over 40 min" if d.mg_per_kg else "over 40 min"
            dosage["rateQuantity"] = _quantity(round(d.mg * 1.5, 2), "mg/h")
        res["dosage"] = dosage
        self.emit(res)
        if not d.given:
            if d.bp_pre is not None:
                self.bp(d.bp_pre, d.start - dt.timedelta(minutes=10), enc_id)
            return
        for minute, bp, beat, sat in d.readings:
            at = d.start + dt.timedelta(minutes=minute)
            if bp is not None:
                self.bp(bp, at, enc_id)
            self.vital("8867-4", "Heart rate", beat, "/min", at, enc_id)
            if sat is not None and minute > 0:
                self.vital("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", sat, "%", at, enc_id)
        if d.cadss is not None:
            self.local_score("cadss-6" if d.cadss6 else "cadss", "CADSS-6 total" if d.cadss6 else "CADSS total",
                             d.cadss, d.start + dt.timedelta(minutes=40), enc_id)
        if d.moaas_min is not None:
            self.local_score("moaas", "MOAA/S score", d.moaas_min, d.start + dt.timedelta(minutes=30), enc_id)
        for code, display, severity, serious in d.adverse:
            self.adverse(s, d, enc_id, code, display, severity, serious)

    def adverse(self, s: Session, d: Dose, enc_id: str, code: str, display: str, severity: str, serious: bool) -> None:
        at = d.start + dt.timedelta(minutes=self.rng.randint(15, 90))
        suspect = ({"reference": f"MedicationAdministration/{self.ma_ids[id(d)]}"} if id(d) in self.ma_ids
                   else {"display": d.drug})
        self.emit({"resourceType": "AdverseEvent", "id": self.new_id("ae"),
                   "meta": meta(1, self.lag(d.monitoring_end), self.off), "actuality": "actual",
                   "event": concept(SNOMED, code, display), "subject": self.patient_ref(),
                   "encounter": {"reference": f"Encounter/{enc_id}"}, "date": self.t(at),
                   "recordedDate": self.t(d.monitoring_end),
                   "recorder": self.staff_ref(s.practitioner),
                   "seriousness": concept("http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
                                          "serious" if serious else "non-serious",
                                          "Serious" if serious else "Non-serious"),
                   "severity": concept("http://terminology.hl7.org/CodeSystem/adverse-event-severity", severity,
                                       severity.capitalize()),
                   "outcome": concept("http://terminology.hl7.org/CodeSystem/adverse-event-outcome", "resolved",
                                      "Resolved"),
                   "suspectEntity": [{"instance": suspect}]})

    def document(self, s: Session, enc_id: str) -> None:
        text = document_text(self.st, s).encode("utf-8")
        consult = s.document == "consult"
        when = self.lag(s.end, 30, 600)
        if when > self.cutoff:
            return
        self.emit({"resourceType": "DocumentReference", "id": self.new_id("doc"), "meta": meta(1, when, self.off),
                   "status": "current", "docStatus": "final",
                   "type": concept(LOINC, "11488-4" if consult else "18842-5",
                                   "Consult note" if consult else "Discharge summary"),
                   "category": [concept("http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                                        "clinical-note", "Clinical Note")],
                   "subject": self.patient_ref(), "date": self.t(when),
                   "author": [self.staff_ref(s.practitioner)],
                   "custodian": {"reference": f"Organization/{self.c.id}"},
                   "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "language": "en-US",
                                               "data": base64.b64encode(text).decode("ascii"), "size": len(text),
                                               "title": "Consult note" if consult else "Discharge summary",
                                               "creation": self.t(when)}}],
                   "context": {"encounter": [{"reference": f"Encounter/{enc_id}"}],
                               "period": {"start": self.t(s.start), "end": self.t(s.end)}}})
