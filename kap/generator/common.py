"""Code systems, time formatting and small helpers shared by the generator modules."""
from __future__ import annotations

import datetime as dt
import random
from typing import Sequence, TypeVar

T = TypeVar("T")

KAP = "http://kap-pipeline.example/fhir/CodeSystem/kap"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
TIMEZONE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/timezone"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CANCEL_REASON = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
CANCELLATION_DATE_EXT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.cancellationDate"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
MRN_SYSTEM = "urn:kap:mrn"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
DL_SYSTEM = "urn:oid:2.16.840.1.113883.4.3.25"  # a state driver's licence namespace

MRN_MODULUS = 10_000_000
_MRN_STEP = 7919  # prime, coprime with 10**7: idx -> MRN is a bijection, so MRNs never collide


def mrn_for(index: int) -> str:
    """MRN of the patient with this index; indices >= the patient count give MRNs no one has."""
    return f"MRN{(index * _MRN_STEP + 1_000_003) % MRN_MODULUS:07d}"


def tz(offset_hours: int) -> str:
    return f"{offset_hours:+03d}:00"


def ts(when: dt.datetime, offset: str) -> str:
    """ISO 8601 with the clinic's UTC offset (naive local datetimes throughout the simulation)."""
    return when.isoformat(timespec="seconds") + offset


def ts_utc(when: dt.datetime, offset_hours: int) -> str:
    return (when - dt.timedelta(hours=offset_hours)).isoformat(timespec="seconds") + "Z"


def pick(rng: random.Random, weighted: Sequence[tuple[T, float]]) -> T:
    """One item of (item, weight) pairs; a linear scan is fine for the short tables used here."""
    total = sum(w for _, w in weighted)
    x = rng.random() * total
    for item, w in weighted:
        x -= w
        if x < 0:
            return item
    return weighted[-1][0]


def clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def workday(day: dt.date) -> dt.date:
    """Move a clinic visit off the weekend."""
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def slot(rng: random.Random, day: dt.date, first_hour: int = 8, last_hour: int = 16) -> dt.datetime:
    """A quarter-hour appointment slot between first_hour and last_hour (inclusive start)."""
    quarter = rng.randrange(first_hour * 4, last_hour * 4 + 1)
    return dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=15 * quarter)


def coding(system: str, code: str, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict:
    cc: dict = {"coding": [coding(system, code, display)]}
    if text:
        cc["text"] = text
    return cc
