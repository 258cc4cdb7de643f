"""Dosing protocols per route, one simulated dosing session, and its dosing-log CSV row."""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from .common import clip, pick, ts

CSV_COLUMNS: tuple[str, ...] = (
    "dosing_id", "clinic_id", "patient_mrn", "route", "drug", "dose_mg", "dose_mg_per_kg", "weight_kg",
    "start_at", "end_at", "monitoring_end_at",
    "bp_pre_systolic", "bp_pre_diastolic", "bp_40min_systolic", "bp_40min_diastolic",
    "bp_discharge_systolic", "bp_discharge_diastolic", "heart_rate_pre", "spo2_min", "cadss_total",
    "moaas_min", "is_booster", "clinician_id", "rems_form_submitted_on", "recorded_at", "amended_at", "is_void",
    "setting",
)

# DOMAIN.md: IV 40 %, IN 25 %, SL/PO 25 %, IM 10 %
ROUTE_MIX: tuple[tuple[str, float], ...] = (("IV", 0.40), ("IN", 0.25), ("SL", 0.20), ("PO", 0.05), ("IM", 0.10))

# Induction calendars: day offsets from the first dose.
_IV_PLANS = (((0, 2, 4, 7, 9, 11), 0.6), ((0, 3, 7, 10, 14, 17), 0.4))  # 6 in 12 days / in 2.5 weeks
_IN_PLAN = (0, 3, 7, 10, 14, 17, 21, 24)                                  # twice weekly, weeks 1-4


# Monitoring protocol lapses the generator plants, so the completeness flags have something real to
# catch (DOMAIN.md section 4 table): which lapses break each route's default rule, the rule's
# minimum observation and what it is counted from. In-office sessions only.
LAPSE_RATE = 0.07
LAPSES: dict[str, tuple[str, ...]] = {
    "IN": ("short_observation", "no_bp_pre", "no_bp_40min", "no_bp_discharge", "no_spo2"),
    "IV": ("short_observation", "no_bp_pre", "no_bp_40min", "no_bp_discharge", "no_spo2"),
    "IM": ("short_observation", "no_bp_pre", "no_bp_discharge", "no_spo2"),
    "SL": ("short_observation", "no_bp_pre", "no_bp_discharge"),
    "PO": ("short_observation", "no_bp_pre", "no_bp_discharge"),
}
MIN_OBSERVATION: dict[str, tuple[int, str]] = {   # minutes, counted from "start" or "end" of the dose
    "IN": (120, "start"), "IV": (30, "end"), "IM": (30, "start"), "SL": (60, "start"), "PO": (60, "start"),
}
# Where SL/PO doses after the first two are taken: often at home, some under telehealth supervision.
HOME_SETTINGS: tuple[tuple[str, float], ...] = (("office", 0.5), ("home", 0.4), ("telehealth_supervised", 0.1))


def induction_plan(route: str, rng: random.Random) -> tuple[int, ...]:
    if route == "IV":
        return pick(rng, _IV_PLANS)
    if route == "IN":
        return _IN_PLAN
    n = rng.choice((3, 4, 4, 5, 6)) if route == "IM" else rng.choice((4, 4, 5, 6))
    step = rng.choice((3, 4, 7, 7))
    return tuple(i * step for i in range(n))


def booster_gaps(route: str, rng: random.Random) -> list[int]:
    """Days between maintenance doses after induction (esketamine: weekly weeks 5-8, then 1-2 weekly)."""
    if route == "IN":
        return [7, 7, 7, 7] + [rng.choice((7, 14, 14)) for _ in range(rng.randint(2, 10))]
    if route == "IV":
        return [rng.randint(21, 42) for _ in range(rng.randint(2, 5))]
    return [rng.randint(14, 28) for _ in range(rng.randint(2, 6))]


@dataclass
class Dose:
    dosing_id: str
    route: str
    drug: str
    mg: float
    mg_per_kg: float | None
    weight_kg: float | None
    start: dt.datetime
    end: dt.datetime | None
    monitoring_end: dt.datetime
    bp_pre: tuple[int, int] | None
    bp_40: tuple[int, int] | None
    bp_discharge: tuple[int, int] | None
    heart_rate_pre: int | None
    spo2_min: int | None
    cadss: int | None          # 23-item total, or the 6-item total when cadss6
    cadss6: bool
    moaas_min: int | None
    booster: bool
    clinician: str
    rems_on: dt.date | None
    recorded_at: dt.datetime
    given: bool = True
    not_given_reason: str | None = None
    in_ehr: bool = True
    in_log: bool = True
    log_shift_min: int = 0     # the dosing room's clock differs from the EHR's on some rows
    setting: str = "office"    # office | home | telehealth_supervised (dosing log column)
    lapse: str | None = None   # the monitoring protocol lapse planted in this session, if any
    adverse: list[tuple[str, str, str, bool]] = field(default_factory=list)  # (code, display, severity, serious)
    # monitor readings every ~20 min: (minutes after start, BP or None, heart rate, SpO2 or None)
    readings: list[tuple[int, tuple[int, int] | None, int, int | None]] = field(default_factory=list)

    @property
    def hcpcs(self) -> str | None:
        if self.route != "IN":
            return None
        return "G2082" if self.mg <= 56 else "G2083"


ADVERSE = {
    "nausea": ("422587007", "Nausea"),
    "dizziness": ("404640003", "Dizziness"),
    "hypertension": ("24184005", "Finding of increased blood pressure"),
    "dissociation": ("44376007", "Dissociative disorder"),
    "vomiting": ("422400008", "Vomiting"),
    "headache": ("25064002", "Headache"),
}


def _round_to(x: float, step: float) -> float:
    return round(round(x / step) * step, 1)


def dose_mg(route: str, weight: float, n: int, age: int, prev_mg: float | None, rng: random.Random) -> float:
    """Milligrams for the n-th (0-based) dose of a course."""
    if route == "IV":
        mg_kg = 0.5 if n < 3 or rng.random() < 0.8 else rng.choice((0.6, 0.75))
        return round(mg_kg * weight, 1)
    if route == "IN":
        if n == 0:
            return 28.0 if age >= 65 else 56.0
        if prev_mg is not None and prev_mg >= 84:
            return 84.0
        return pick(rng, ((56.0, 0.5), (84.0, 0.45), (28.0, 0.05 if age >= 65 else 0.0)))
    if route == "IM":
        return _round_to(rng.uniform(0.5, 1.0) * weight, 5)
    if route == "PO":
        return _round_to(rng.uniform(2.0, 2.5) * weight, 25)
    base = prev_mg if prev_mg is not None else rng.choice((100.0, 150.0, 200.0, 200.0, 250.0))
    if n >= 2 and base < 300 and rng.random() < 0.3:
        base += 50
    return base


def _bp(sys: float, dia: float) -> tuple[int, int]:
    s = int(round(clip(sys, 85, 230)))
    d = int(round(clip(dia, 45, 140)))
    return s, min(d, s - 20)


def simulate_dose(rng: random.Random, *, dosing_id: str, route: str, start: dt.datetime, n: int,
                  person_age: int, weight: float, sys_bp: float, dia_bp: float, hr: float,
                  prev_mg: float | None, booster: bool, clinician: str, cadss6: bool) -> Dose:
    drug = "esketamine" if route == "IN" else "ketamine"
    mg = dose_mg(route, weight, n, person_age, prev_mg, rng)
    per_kg = round(mg / weight, 3) if route != "IN" else None
    if route == "IV":
        end = start + dt.timedelta(minutes=40)
        monitoring = start + dt.timedelta(minutes=rng.randint(90, 130))
    elif route == "IN":
        end = start + dt.timedelta(minutes=rng.choice((5, 10, 10)))
        # REMS: >= 2 h; a minority of sessions are cut short (monitoring completeness flag)
        minutes = rng.randint(120, 155) if rng.random() < 0.9 else rng.randint(90, 118)
        monitoring = start + dt.timedelta(minutes=minutes)
    elif route in ("SL", "PO"):
        end = start + dt.timedelta(minutes=rng.randint(15, 20))
        monitoring = start + dt.timedelta(minutes=rng.randint(90, 150))
    else:
        end = None
        monitoring = start + dt.timedelta(minutes=rng.randint(60, 120))
    # Setting and protocol lapses come from a generator of their own, seeded from the patient's
    # stream without drawing from it (same seed, same bytes; the patient's other draws stay put).
    side = random.Random(hash(rng.getstate()[1]))   # the state's ints: hash() of them is stable
    setting = pick(side, HOME_SETTINGS) if route in ("SL", "PO") and (booster or n >= 2) else "office"
    lapse = side.choice(LAPSES[route]) if setting == "office" and side.random() < LAPSE_RATE else None
    if lapse == "short_observation":
        minimum, anchor = MIN_OBSERVATION[route]
        from_at = end if anchor == "end" and end is not None else start
        monitoring = from_at + dt.timedelta(minutes=minimum - side.randint(3, 20))
    pre_s, pre_d = sys_bp + rng.gauss(0, 7), dia_bp + rng.gauss(0, 5)
    # BP peaks near 40 min; 8-19 % rise >= 40 systolic / >= 25 diastolic (DOMAIN.md section 2)
    big = rng.random() < (0.14 if route in ("IV", "IN", "IM") else 0.06)
    rise_s = rng.uniform(40, 55) if big else rng.uniform(3, 25)
    rise_d = rng.uniform(25, 32) if big else rng.uniform(1, 14)
    bp_pre = _bp(pre_s, pre_d)
    bp_40 = _bp(pre_s + rise_s, pre_d + rise_d)
    bp_dis = _bp(pre_s + rng.uniform(-4, 10), pre_d + rng.uniform(-3, 7))
    if rng.random() < 0.05:
        bp_40 = None  # the 40-minute reading was missed
    cadss_mean = {"IV": 18, "IN": 16, "IM": 24, "SL": 8, "PO": 6}[route]
    cadss23 = int(clip(rng.gauss(cadss_mean, 8), 0, 70))
    cadss = int(round(cadss23 * 24 / 92)) if cadss6 else cadss23
    moaas = pick(rng, ((5, 0.6), (4, 0.25), (3, 0.12), (2, 0.03)))
    spo2 = int(clip(round(rng.gauss(96.5, 1.3)), 88, 100)) if rng.random() > 0.03 else None
    if lapse == "no_spo2":
        spo2 = None
    if lapse == "no_bp_pre":
        bp_pre = None
    elif lapse == "no_bp_40min":
        bp_40 = None
    elif lapse == "no_bp_discharge":
        bp_dis = None
    rems = None
    if drug == "esketamine":
        u = rng.random()
        if u < 0.85:
            rems = start.date() + dt.timedelta(days=rng.randint(0, 7))
        elif u < 0.95:
            rems = start.date() + dt.timedelta(days=rng.randint(8, 21))
    dose = Dose(
        dosing_id=dosing_id, route=route, drug=drug, mg=mg, mg_per_kg=per_kg,
        weight_kg=(round(weight, 1) if route != "IN" or rng.random() < 0.2 else None),
        start=start, end=end, monitoring_end=monitoring, bp_pre=bp_pre, bp_40=bp_40, bp_discharge=bp_dis,
        heart_rate_pre=int(clip(round(hr + rng.gauss(0, 6)), 45, 130)), spo2_min=spo2, cadss=cadss,
        cadss6=cadss6, moaas_min=moaas, booster=booster, clinician=clinician, rems_on=rems,
        recorded_at=monitoring + dt.timedelta(minutes=rng.randint(5, 90)), setting=setting, lapse=lapse,
    )
    # the monitor: pre-dose, every 20 min while monitored, and at discharge; the log keeps three BPs
    hr0 = dose.heart_rate_pre or int(hr)
    span = int((monitoring - start).total_seconds() // 60)
    marks = [-10] + list(range(20, span - 10, 20)) + [span - 5]
    low = spo2 if spo2 is not None else 95
    low_at = rng.choice(marks[1:-1]) if len(marks) > 2 else marks[-1]
    for m in marks:
        if m == -10:
            reading_bp: tuple[int, int] | None = bp_pre
        elif m == 40:
            reading_bp = bp_40
        elif m == span - 5:
            reading_bp = bp_dis
        else:
            share = max(0.0, 1 - abs(m - 40) / 60)  # BP peaks near 40 min
            reading_bp = _bp(pre_s + rise_s * share + rng.gauss(0, 3), pre_d + rise_d * share + rng.gauss(0, 2))
        beat = int(clip(hr0 + (8 * max(0.0, 1 - abs(m - 30) / 60) if m > 0 else 0) + rng.gauss(0, 3), 40, 150))
        sat = None if spo2 is None else (low if m == low_at else min(100, low + rng.randint(0, 3)))
        dose.readings.append((m, reading_bp, beat, sat))
    # transient effects within 1-2 h (DOMAIN.md section 2); esketamine more often
    p = 1.6 if route == "IN" else 1.0
    for key, base in (("nausea", 0.07), ("dizziness", 0.07), ("headache", 0.02), ("vomiting", 0.01)):
        if rng.random() < base * p:
            dose.adverse.append((*ADVERSE[key], pick(rng, (("mild", 0.75), ("moderate", 0.22), ("severe", 0.03))),
                                 False))
    if big and rng.random() < 0.6:
        severe = rng.random() < 0.1
        dose.adverse.append((*ADVERSE["hypertension"], "severe" if severe else "moderate", severe))
    if cadss23 > 35 and rng.random() < 0.5:
        dose.adverse.append((*ADVERSE["dissociation"], "moderate", False))
    return dose


def _num(x: float | int | None, fmt: str = "") -> str:
    return "" if x is None else format(x, fmt)


def csv_row(dose: Dose, clinic_id: str, mrn: str, offset: str) -> list[str]:
    """One dosing-log row (values as strings, in CSV_COLUMNS order)."""
    shift = dt.timedelta(minutes=dose.log_shift_min)
    bp = [dose.bp_pre, dose.bp_40, dose.bp_discharge]
    bp_cols: list[str] = []
    for reading in bp:
        bp_cols += ["", ""] if reading is None else [str(reading[0]), str(reading[1])]
    return [
        dose.dosing_id, clinic_id, mrn, dose.route, dose.drug, f"{dose.mg:.1f}",
        _num(dose.mg_per_kg, ".3f"), _num(dose.weight_kg, ".1f"),
        ts(dose.start + shift, offset), "" if dose.end is None else ts(dose.end + shift, offset),
        ts(dose.monitoring_end + shift, offset), *bp_cols,
        _num(dose.heart_rate_pre), _num(dose.spo2_min), "" if dose.cadss6 else _num(dose.cadss),
        _num(dose.moaas_min), "true" if dose.booster else "false", dose.clinician,
        "" if dose.rems_on is None else dose.rems_on.isoformat(), ts(dose.recorded_at, offset), "", "false",
        dose.setting,
    ]
