"""The clinic network: clinics (Organization + Location) and their staff (Practitioner +
PractitionerRole): prescribers, dosing nurses, therapists (with their leave) and outside referrers."""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from .common import tz
from .people import FAMILY_NAMES, FEMALE_NAMES, MALE_NAMES

# name, street, city, state, ZIP, area code, UTC offset (standard time: the sample ignores DST),
# and nearby towns (town, ZIP3) patients live in.
_CATALOGUE: tuple[tuple, ...] = (
    ("Harborview Ketamine & Psychotherapy Center", "210 Atlantic Ave", "Boston", "MA", "02110", "617", -5,
     (("Boston", "021"), ("Cambridge", "021"), ("Quincy", "021"), ("Lowell", "018"))),
    ("Lakeshore Mood Clinic", "455 N Wells St", "Chicago", "IL", "60654", "312", -6,
     (("Chicago", "606"), ("Evanston", "602"), ("Oak Park", "603"), ("Naperville", "605"))),
    ("Front Range Psychiatric Wellness", "1600 Champa St", "Denver", "CO", "80202", "303", -7,
     (("Denver", "802"), ("Aurora", "800"), ("Boulder", "803"), ("Lakewood", "802"))),
    ("Bayside Integrative Psychiatry", "88 Townsend St", "San Francisco", "CA", "94107", "415", -8,
     (("San Francisco", "941"), ("Oakland", "946"), ("Daly City", "940"), ("San Mateo", "944"))),
    ("Piedmont Ketamine Therapy", "1180 Peachtree St NE", "Atlanta", "GA", "30309", "404", -5,
     (("Atlanta", "303"), ("Decatur", "300"), ("Marietta", "300"), ("Sandy Springs", "303"))),
    ("Cascade Mind Health", "1420 5th Ave", "Seattle", "WA", "98101", "206", -8,
     (("Seattle", "981"), ("Bellevue", "980"), ("Tacoma", "984"), ("Everett", "982"))),
    ("Hill Country Ketamine Clinic", "701 Brazos St", "Austin", "TX", "78701", "512", -6,
     (("Austin", "787"), ("Round Rock", "786"), ("San Marcos", "786"), ("Georgetown", "786"))),
    ("Desert Bloom Mental Health", "2 N Central Ave", "Phoenix", "AZ", "85004", "602", -7,
     (("Phoenix", "850"), ("Tempe", "852"), ("Mesa", "852"), ("Scottsdale", "852"))),
    ("Twin Cities KAP Collective", "80 S 8th St", "Minneapolis", "MN", "55402", "612", -6,
     (("Minneapolis", "554"), ("Saint Paul", "551"), ("Bloomington", "554"), ("Edina", "554"))),
    ("Old Line Psychiatry & Ketamine", "100 Light St", "Baltimore", "MD", "21202", "410", -5,
     (("Baltimore", "212"), ("Towson", "212"), ("Columbia", "210"), ("Annapolis", "214"))),
    ("Gulf Coast Mood Center", "1000 Main St", "Houston", "TX", "77002", "713", -6,
     (("Houston", "770"), ("Pasadena", "775"), ("Sugar Land", "774"), ("Katy", "774"))),
    ("Rose City Ketamine Therapy", "1120 NW Couch St", "Portland", "OR", "97209", "503", -8,
     (("Portland", "972"), ("Beaverton", "970"), ("Gresham", "970"), ("Hillsboro", "971"))),
)

# The IANA time zone of each catalogue city (sent as the FHIR timezone extension).
_ZONES = {"Boston": "America/New_York", "Chicago": "America/Chicago", "Denver": "America/Denver",
          "San Francisco": "America/Los_Angeles", "Atlanta": "America/New_York", "Seattle": "America/Los_Angeles",
          "Austin": "America/Chicago", "Phoenix": "America/Phoenix", "Minneapolis": "America/Chicago",
          "Baltimore": "America/New_York", "Houston": "America/Chicago", "Portland": "America/Los_Angeles"}
# The clinic that also doses and sees patients in the evening (after work): San Francisco, whose
# evening sessions fall on the next UTC day.
_EVENING_CLINIC = 3

# How a clinic records doses: both systems (the pipeline must dedupe), EHR only, dosing log only.
_RECORDING = ("both", "ehr", "log", "both", "both", "ehr", "both", "log", "both", "both", "ehr", "both")


@dataclass(frozen=True)
class Staff:
    id: str
    given: str
    family: str
    gender: str
    role: str            # prescriber | dosing_nurse | therapist | referrer
    qualification: str   # MD, NP, PhD, LCSW, ...
    npi: str
    clinic_id: str | None


@dataclass
class Clinic:
    id: str
    name: str
    street: str
    city: str
    state: str
    zip: str
    area_code: str
    utc_offset: int
    towns: tuple[tuple[str, str], ...]
    recording: str              # both | ehr | log
    uses_cadss6: bool           # some clinics score the 6-item CADSS
    interpretation_style: bool  # contraindication in Observation.interpretation instead of component
    time_zone: str = "UTC"      # IANA zone, sent as the FHIR timezone extension
    evening_hours: bool = False  # some sessions start 16:00-19:45 local time
    prescribers: list[Staff] = field(default_factory=list)
    therapists: list[Staff] = field(default_factory=list)
    nurses: list[Staff] = field(default_factory=list)   # dosing clinicians (RN, CRNA)

    @property
    def offset(self) -> str:
        return tz(self.utc_offset)


@dataclass
class Network:
    clinics: list[Clinic]
    referrers: list[Staff]
    weights: list[float]  # share of patients per clinic
    # therapist id -> (first day away, first day back): leave, sickness, parental leave
    leave: dict[str, tuple[dt.date, dt.date]] = field(default_factory=dict)

    def staff(self) -> list[Staff]:
        out: list[Staff] = []
        for c in self.clinics:
            out += c.prescribers + c.therapists + c.nurses
        return out + self.referrers

    def away(self, s: Staff, day: dt.date) -> bool:
        span = self.leave.get(s.id)
        return span is not None and span[0] <= day < span[1]


def _npi(rng: random.Random) -> str:
    return "1" + "".join(str(rng.randrange(10)) for _ in range(9))


def _person(rng: random.Random) -> tuple[str, str, str]:
    gender = rng.choice(("female", "male"))
    given = rng.choice(FEMALE_NAMES if gender == "female" else MALE_NAMES)
    return given, rng.choice(FAMILY_NAMES), gender


def build_network(rng: random.Random, patients: int) -> Network:
    """Several clinics; larger networks for larger samples (5 clinics at 200 patients, 12 at 50k)."""
    n = min(len(_CATALOGUE), 5 + patients // 7000)
    clinics: list[Clinic] = []
    for i in range(n):
        name, street, city, state, zip_, area, off, towns = _CATALOGUE[i]
        c = Clinic(id=f"clinic-{i + 1:02d}", name=name, street=street, city=city, state=state, zip=zip_,
                   area_code=area, utc_offset=off, towns=towns, recording=_RECORDING[i],
                   uses_cadss6=(i % 4 == 2), interpretation_style=(i % 2 == 1),
                   time_zone=_ZONES[city], evening_hours=(i == _EVENING_CLINIC))
        for k in range(rng.randint(2, 3)):
            g, f, sex = _person(rng)
            c.prescribers.append(Staff(f"pr-{i + 1:02d}-{k + 1:02d}", g, f, sex, "prescriber",
                                       rng.choice(("MD", "MD", "DO", "NP", "CRNA")), _npi(rng), c.id))
        for k in range(rng.randint(3, 5)):
            g, f, sex = _person(rng)
            c.therapists.append(Staff(f"th-{i + 1:02d}-{k + 1:02d}", g, f, sex, "therapist",
                                      rng.choice(("PhD", "PsyD", "LCSW", "LMFT", "LPC")), _npi(rng), c.id))
        clinics.append(c)
    referrers = []
    for k in range(6 + n):
        g, f, sex = _person(rng)
        referrers.append(Staff(f"ref-{k + 1:03d}", g, f, sex, "referrer", rng.choice(("MD", "DO", "NP")),
                               _npi(rng), None))
    # uneven clinic sizes, like a real network (one flagship, smaller satellites)
    weights = [1.0 / (1 + 0.35 * i) for i in range(n)]
    return Network(clinics, referrers, weights)


def add_care_team(net: Network, rng: random.Random, start: dt.date, days: int) -> None:
    """Dosing nurses for every clinic and a leave period for about a third of the therapists.

    A separate random stream (the caller's), so the clinics, prescribers, therapists and referrers
    drawn by `build_network` are the same with or without it."""
    for i, c in enumerate(net.clinics):
        for k in range(rng.randint(1, 2)):
            g, f, sex = _person(rng)
            c.nurses.append(Staff(f"rn-{i + 1:02d}-{k + 1:02d}", g, f, sex, "dosing_nurse",
                                  rng.choice(("RN", "RN", "CRNA")), _npi(rng), c.id))
        for t in c.therapists:
            if rng.random() < 0.35:
                first = start + dt.timedelta(days=rng.randrange(max(days, 1)))
                net.leave[t.id] = (first, first + dt.timedelta(days=rng.randint(14, 56)))
