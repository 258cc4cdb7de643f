"""Synthetic people with real-looking direct identifiers (the privacy tests need something to find)."""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from .common import mrn_for

FEMALE_NAMES = ("Olivia", "Emma", "Ava", "Sophia", "Isabella", "Mia", "Amelia", "Harper", "Evelyn", "Abigail",
                "Emily", "Elizabeth", "Sofia", "Avery", "Ella", "Scarlett", "Grace", "Chloe", "Victoria",
                "Riley", "Aria", "Lily", "Aubrey", "Zoey", "Penelope", "Layla", "Nora", "Camila", "Hannah",
                "Maria", "Rosa", "Keisha", "Priya", "Mei", "Aaliyah", "Fatima", "Ingrid", "Dolores", "Joan",
                "Margaret", "Patricia", "Linda", "Barbara", "Susan", "Nancy", "Karen", "Deborah", "Sharon")
MALE_NAMES = ("Liam", "Noah", "William", "James", "Oliver", "Benjamin", "Elijah", "Lucas", "Mason", "Logan",
              "Alexander", "Ethan", "Jacob", "Michael", "Daniel", "Henry", "Jackson", "Sebastian", "Aiden",
              "Matthew", "Samuel", "David", "Joseph", "Carter", "Owen", "Wyatt", "John", "Jack", "Luke",
              "Carlos", "Jamal", "Raj", "Wei", "Omar", "Diego", "Tyrone", "Hiroshi", "Kwame", "Robert",
              "Richard", "Thomas", "Charles", "Gary", "Larry", "Dennis", "Walter", "Harold", "Ernest")
FAMILY_NAMES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
                "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
                "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
                "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
                "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
                "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Patel", "Kim", "Chen", "Okafor",
                "O'Brien", "Kowalski", "Schmidt", "Novak", "Haddad", "Yamamoto", "Ivanova", "Mensah")
_STREETS = ("Maple", "Oak", "Pine", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Main", "Sunset",
            "Ridge", "Walnut", "Willow", "Lincoln", "Jefferson", "Highland", "Church", "Spring", "Mill")
_STREET_KINDS = ("St", "Ave", "Rd", "Dr", "Ln", "Ct", "Blvd", "Way", "Pl", "Ter")
_MAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")


@dataclass
class Person:
    index: int
    id: str
    mrn: str
    given: str
    middle: str | None
    family: str
    gender: str
    birth_date: dt.date
    ssn: str
    driver_licence: str | None
    phone: str
    email: str
    street: str
    city: str
    state: str
    zip: str
    weight_kg: float
    sys_bp: float        # usual resting blood pressure
    dia_bp: float
    heart_rate: float
    age: int            # at the start of the simulated period


def _ssn(rng: random.Random) -> str:
    area = rng.randrange(1, 900)
    while area == 666:
        area = rng.randrange(1, 900)
    return f"{area:03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"


def make_person(index: int, rng: random.Random, area_code: str, state: str,
                towns: tuple[tuple[str, str], ...], start: dt.date) -> Person:
    gender = "female" if rng.random() < 0.6 else "male"   # KAP clinics see more women
    given = rng.choice(FEMALE_NAMES if gender == "female" else MALE_NAMES)
    middle = rng.choice(FEMALE_NAMES if gender == "female" else MALE_NAMES) if rng.random() < 0.4 else None
    family = rng.choice(FAMILY_NAMES)
    # adults; about 1 % older than 89 so Safe Harbor age grouping is exercised
    age = rng.randint(90, 97) if rng.random() < 0.01 else int(rng.triangular(18, 82, 38))
    birth = start - dt.timedelta(days=365 * age + rng.randrange(365) + age // 4)
    town, zip3 = rng.choice(towns)
    street = f"{rng.randint(2, 9899)} {rng.choice(_STREETS)} {rng.choice(_STREET_KINDS)}"
    if rng.random() < 0.15:
        street += f" Apt {rng.randint(1, 40)}{rng.choice('ABCD')}"
    weight = round(rng.gauss(82 if gender == "male" else 70, 15), 1)
    weight = max(45.0, min(weight, 160.0))
    handle = f"{given}.{family}".lower().replace("'", "")
    p = Person(
        index=index, id=f"p-{index + 1:06d}", mrn=mrn_for(index), given=given, middle=middle, family=family,
        gender=gender, birth_date=birth, ssn=_ssn(rng),
        driver_licence=(f"{state[0]}{rng.randrange(10**7, 10**8)}" if rng.random() < 0.3 else None),
        phone=f"({area_code}) {rng.randint(201, 989)}-{rng.randrange(10000):04d}",
        email=f"{handle}{rng.randint(1, 99)}@{rng.choice(_MAIL_DOMAINS)}",
        street=street, city=town, state=state, zip=f"{zip3}{rng.randrange(100):02d}",
        weight_kg=weight, sys_bp=rng.gauss(124, 11) + 0.25 * (age - 40), dia_bp=rng.gauss(79, 7),
        heart_rate=rng.gauss(74, 9), age=age,
    )
    return p
