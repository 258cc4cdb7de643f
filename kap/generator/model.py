"""One patient's walk through the KAP pathway (DOMAIN.md section 1), as plain data.

The simulation knows nothing about file formats: `fhir.py`, `dosing.py` and `notes.py` turn a
`Story` into records. Times are naive local clinic times; the writers add the clinic's offset.
"""
from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

from .common import clip, pick, slot, workday
from .dosing import ROUTE_MIX, Dose, booster_gaps, induction_plan, simulate_dose
from .network import Clinic, Network, Staff
from .people import Person, make_person

DIAGNOSES = {
    "mdd": ("370143000", "Major depressive disorder"),
    "ptsd": ("47505003", "Posttraumatic stress disorder"),
    "gad": ("21897009", "Generalized anxiety disorder"),
}
CONTRAINDICATIONS = (
    (("38341003", "Hypertensive disorder, systemic arterial"), 0.35),
    (("56265001", "Heart disease"), 0.15),
    (("69322001", "Psychotic disorder"), 0.2),
    (("77386006", "Pregnancy"), 0.1),
    (("66214007", "Substance abuse"), 0.2),
)
MODALITIES = (("CBT", 0.2), ("MBCT", 0.1), ("EMDR", 0.08), ("IFS", 0.15), ("FAP", 0.05), ("ACT", 0.15),
              ("supportive", 0.22), ("other", 0.05))
INSTRUMENT_MAX = {"phq9": 27, "gad7": 21, "pcl5": 80, "phq2": 6}
# share of appointments missed, per session kind: (no-show, cancelled)
_MISS = {"consult": (0.06, 0.06), "preparation": (0.04, 0.06), "dosing": (0.03, 0.05),
         "integration": (0.05, 0.05), "psychotherapy": (0.06, 0.07), "discharge": (0.03, 0.03)}
_CANCEL_REASONS = (("pat", 0.4), ("pat-crs", 0.1), ("pat-cpp", 0.1), ("pat-lt", 0.1), ("pat-fb", 0.05),
                   ("prov-pers", 0.1), ("oth-weath", 0.05), ("other", 0.1))


@dataclass
class Assessment:
    instrument: str             # phq9 | gad7 | pcl5 | phq2
    score: int
    at: dt.datetime
    items: list[int] | None = None   # PHQ-9 item answers, when exported as a QuestionnaireResponse


@dataclass
class Episode:
    number: int
    start: dt.datetime
    route: str
    end: dt.datetime | None = None
    end_status: str | None = None    # finished | cancelled
    first_dose: dt.datetime | None = None
    consent_at: dt.datetime | None = None


@dataclass
class Session:
    kind: str                   # consult | preparation | dosing | integration | psychotherapy | discharge
    start: dt.datetime
    minutes: int
    status: str                 # fulfilled | noshow | cancelled
    booked_at: dt.datetime
    practitioner: Staff
    telehealth: bool = False
    cancelled_at: dt.datetime | None = None
    cancel_reason: str | None = None
    episode: Episode | None = None
    dose: Dose | None = None
    assessments: list[Assessment] = field(default_factory=list)
    screening_vitals: tuple[tuple[int, int], int, float] | None = None   # (BP, HR, weight kg)
    note_topics: list[str] = field(default_factory=list)   # what the therapy note mentions
    has_note: bool = False
    document: str | None = None  # consult | discharge: a DocumentReference is exported

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(minutes=self.minutes)


@dataclass
class Story:
    person: Person
    clinic: Clinic
    referral_at: dt.datetime
    self_referral: bool
    referrer: Staff
    therapist: Staff
    prescriber: Staff
    modality: str
    diagnoses: list[str]                        # keys of DIAGNOSES
    contraindication: tuple[str, str] | None = None
    diagnosed_at: dt.datetime | None = None
    decision_at: dt.datetime | None = None
    consult: Session | None = None
    sessions: list[Session] = field(default_factory=list)
    portal_assessments: list[Assessment] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)


class _Course:
    """Symptom trajectory of one episode: exponential improvement after dose 1, maybe a relapse."""

    def __init__(self, rng: random.Random, baseline: dict[str, int]) -> None:
        self.rng = rng
        self.baseline = baseline
        kind = pick(rng, (("remit", 0.3), ("respond", 0.2), ("partial", 0.2), ("none", 0.3)))
        b = max(baseline["phq9"], 1)
        if kind == "remit":
            self.frac = rng.uniform(0.02, min(0.5, 3.5 / b))
        elif kind == "respond":
            self.frac = rng.uniform(0.25, 0.48)
        elif kind == "partial":
            self.frac = rng.uniform(0.55, 0.75)
        else:
            self.frac = rng.uniform(0.78, 1.05)
        self.tau = rng.uniform(4, 10)
        self.relapse_day = rng.uniform(45, 160) if kind in ("remit", "respond") and rng.random() < 0.3 else None
        self.first_dose: dt.datetime | None = None

    def weaken(self) -> None:
        """Patients who stop early mostly did not improve much."""
        if self.rng.random() < 0.7:
            self.frac = max(self.frac, self.rng.uniform(0.6, 1.0))

    def score(self, instrument: str, when: dt.datetime) -> int:
        top = INSTRUMENT_MAX[instrument]
        b = self.baseline[instrument]
        s = float(b)
        if self.first_dose is not None and when > self.first_dose:
            t = (when - self.first_dose).total_seconds() / 86400
            target = b * self.frac
            s = b - (b - target) * (1 - math.exp(-t / self.tau))
            if self.relapse_day is not None and t > self.relapse_day:
                s += (0.85 * b - s) * (1 - math.exp(-(t - self.relapse_day) / 12))
        s += self.rng.gauss(0, 0.06 * top)
        return int(round(clip(s, 0, top)))


def _phq9_items(score: int, rng: random.Random) -> list[int]:
    items = [0] * 9
    for _ in range(score):
        free = [i for i in range(9) if items[i] < 3]
        items[rng.choice(free)] += 1
    return items


class PatientSimulation:
    def __init__(self, index: int, rng: random.Random, net: Network, start: dt.date, days: int,
                 team_rng: random.Random | None = None) -> None:
        self.rng = rng
        self.net = net
        self.start = start
        self.days = days
        clinic = net.clinics[pick(rng, list(enumerate(net.weights)))]
        person = make_person(index, rng, clinic.area_code, clinic.state, clinic.towns, start)
        arrival = start + dt.timedelta(days=rng.randrange(days))
        primary = pick(rng, (("mdd", 0.7), ("ptsd", 0.15), ("gad", 0.15)))
        dx = [primary]
        if primary == "mdd" and rng.random() < 0.3:
            dx.append("gad")
        if primary != "ptsd" and rng.random() < 0.12:
            dx.append("ptsd")
        modality = "EMDR" if "ptsd" in dx and rng.random() < 0.4 else pick(rng, MODALITIES)
        self.story = Story(
            person=person, clinic=clinic, referral_at=slot(rng, arrival, 8, 18),
            self_referral=rng.random() < 0.3, referrer=rng.choice(net.referrers),
            therapist=rng.choice(clinic.therapists), prescriber=rng.choice(clinic.prescribers),
            modality=modality, diagnoses=dx)
        self._dose_no = 0
        self._plan_team(team_rng if team_rng is not None else random.Random(f"kap:care-team:{index}"))

    # --- the care team ------------------------------------------------------------------------
    def _plan_team(self, team_rng: random.Random) -> None:
        """Who will see the patient, drawn from its own random stream and from nothing about the
        patient's course (no planted effect of continuity on outcomes): the usual therapist
        (Story.therapist); for about 12 % a permanent reassignment to a colleague 2-17 weeks after
        referral (caseload balancing, a poor fit); a fixed cover colleague while the usual therapist
        is on leave (Network.leave); and about 6 % of sessions with another colleague (scheduling)."""
        st = self.story
        self.team_rng = team_rng
        others = [t for t in st.clinic.therapists if t is not st.therapist]
        self.cover = team_rng.choice(others) if others else st.therapist
        self.reassign_day: dt.date | None = None
        self.reassigned_to = st.therapist
        if others and team_rng.random() < 0.12:
            self.reassign_day = st.referral_at.date() + dt.timedelta(days=team_rng.randint(14, 120))
            self.reassigned_to = team_rng.choice(others)

    def therapist_on(self, day: dt.date) -> Staff:
        """The therapist who leads a preparation, integration or psychotherapy session on `day`."""
        st, r = self.story, self.team_rng
        usual = st.therapist if self.reassign_day is None or day < self.reassign_day else self.reassigned_to
        if self.net.away(usual, day):
            free = [t for t in st.clinic.therapists if t is not usual and not self.net.away(t, day)]
            return self.cover if self.cover in free or not free else r.choice(free)
        if r.random() < 0.06:
            others = [t for t in st.clinic.therapists if t is not usual and not self.net.away(t, day)]
            if others:
                return r.choice(others)
        return usual

    def dosing_clinician(self) -> Staff:
        """Who supervises a dosing session: a dosing nurse for most, else the prescriber."""
        nurses = self.story.clinic.nurses
        if nurses and self.team_rng.random() < 0.7:
            return self.team_rng.choice(nurses)
        return self.story.prescriber

    # --- appointments -------------------------------------------------------------------------
    def book(self, kind: str, when: dt.datetime, minutes: int, who: Staff, telehealth: bool = False,
             status: str | None = None) -> Session:
        rng = self.rng
        booked = when - dt.timedelta(hours=rng.uniform(20, 14 * 24))
        booked = max(booked, self.story.referral_at + dt.timedelta(minutes=30))
        if booked >= when:
            booked = when - dt.timedelta(hours=1)
        if status is None:
            noshow, cancel = _MISS[kind]
            u = rng.random()
            status = "noshow" if u < noshow else "cancelled" if u < noshow + cancel else "fulfilled"
        s = Session(kind, when, minutes, status, booked, who, telehealth)
        if status == "cancelled":
            # about a third are late cancels (< 24 h before the start)
            if rng.random() < 0.35:
                cancelled = when - dt.timedelta(minutes=rng.randint(30, 23 * 60))
            else:
                cancelled = when - dt.timedelta(hours=rng.uniform(25, 6 * 24))
            s.cancelled_at = max(cancelled, booked + dt.timedelta(minutes=10))
            s.cancel_reason = pick(rng, _CANCEL_REASONS)
        self.story.sessions.append(s)
        return s

    def attend(self, kind: str, day: dt.date, minutes: int, who: Staff, telehealth: bool = False,
               first_hour: int = 8, last_hour: int = 16, tries: int = 3) -> Session | None:
        """Book until the patient comes (missed visits are rebooked a few days later)."""
        first_hour, last_hour = self._hours(first_hour, last_hour, (17, 19))
        for _ in range(tries):
            s = self.book(kind, slot(self.rng, day, first_hour, last_hour), minutes, who, telehealth)
            if s.status == "fulfilled":
                return s
            day = workday(day + dt.timedelta(days=self.rng.randint(1, 5)))
        return None

    def _hours(self, first_hour: int, last_hour: int, evening: tuple[int, int]) -> tuple[int, int]:
        """An evening clinic gives about a third of its sessions after work."""
        if self.story.clinic.evening_hours and self.rng.random() < 0.35:
            return evening
        return first_hour, last_hour

    # --- pathway ------------------------------------------------------------------------------
    def run(self) -> Story:
        rng, st = self.rng, self.story
        if rng.random() < 0.05:
            return st  # referred, never booked
        consult_day = workday(st.referral_at.date() + dt.timedelta(days=rng.randint(3, 21)))
        consult = self.attend("consult", consult_day, rng.choice((60, 75, 90)), st.prescriber,
                              telehealth=rng.random() < 0.2)
        if consult is None:
            return st
        st.consult = consult
        st.diagnosed_at = consult.start + dt.timedelta(minutes=consult.minutes - 10)
        consult.has_note = rng.random() < 0.8
        consult.document = "consult" if rng.random() < 0.1 else None
        p = st.person
        baseline = {
            "phq9": int(clip(round(rng.gauss(18 if st.diagnoses[0] == "mdd" else 14, 4)), 8, 27)),
            "gad7": int(clip(round(rng.gauss(13, 4)), 0, 21)),
            "pcl5": int(clip(round(rng.gauss(50 if "ptsd" in st.diagnoses else 28, 10)), 0, 80)),
        }
        baseline["phq2"] = min(6, round(baseline["phq9"] * 6 / 27 + rng.uniform(-1, 1)))
        contra = pick(rng, CONTRAINDICATIONS) if rng.random() < 0.08 else None
        bp = (int(p.sys_bp + rng.gauss(0, 6)), int(p.dia_bp + rng.gauss(0, 4)))
        if contra is not None and contra[0] == "38341003":
            bp = (rng.randint(160, 185), rng.randint(98, 112))  # uncontrolled hypertension
        consult.screening_vitals = (bp, int(p.heart_rate), p.weight_kg)
        at = consult.start + dt.timedelta(minutes=5)
        course = _Course(rng, baseline)
        self._assess(consult, at, course, ("phq9", "gad7") + (("pcl5",) if "ptsd" in st.diagnoses
                                                               or rng.random() < 0.35 else ())
                     + (("phq2",) if rng.random() < 0.2 else ()))
        st.decision_at = consult.end
        if contra is not None:
            st.contraindication = contra
            return st
        ep = Episode(1, consult.end, pick(rng, ROUTE_MIX))
        st.episodes.append(ep)
        self._course(ep, course, workday(consult.start.date() + dt.timedelta(days=rng.randint(2, 10))))
        st.sessions.sort(key=lambda s: s.start)
        return st

    def _assess(self, session: Session | None, at: dt.datetime, course: _Course,
                instruments: tuple[str, ...]) -> None:
        for instr in instruments:
            a = Assessment(instr, course.score(instr, at), at)
            if instr == "phq9" and self.rng.random() < 0.25:
                a.items = _phq9_items(a.score, self.rng)
            if session is None:
                self.story.portal_assessments.append(a)
            else:
                session.assessments.append(a)
                if instr == "phq9" and a.score >= 20 and self.rng.random() < 0.3:
                    session.note_topics.append("risk")

    def _dose(self, ep: Episode, day: dt.date, n: int, prev_mg: float | None,
              booster: bool) -> tuple[Session | None, int]:
        """A dosing visit, rebooked when missed; returns the visit and the days lost."""
        rng, st = self.rng, self.story
        lost = 0
        first_hour, last_hour = self._hours(8, 14, (16, 18))
        for _ in range(3):
            when = slot(rng, workday(day + dt.timedelta(days=lost)), first_hour, last_hour)
            who = self.dosing_clinician()
            s = self.book("dosing", when, 150, who)
            s.episode = ep
            if s.status == "fulfilled":
                self._dose_no += 1
                d = simulate_dose(
                    rng, dosing_id=f"dl-{st.person.index + 1:06d}-{self._dose_no:03d}", route=ep.route,
                    start=when + dt.timedelta(minutes=rng.choice((10, 15, 20))), n=n, person_age=st.person.age,
                    weight=st.person.weight_kg, sys_bp=st.person.sys_bp, dia_bp=st.person.dia_bp,
                    hr=st.person.heart_rate, prev_mg=prev_mg, booster=booster, clinician=who.id,
                    cadss6=st.clinic.uses_cadss6)
                s.minutes = int((d.monitoring_end - s.start).total_seconds() // 60) + 5
                s.dose = d
                mode = st.clinic.recording
                d.in_ehr = mode != "log" and (mode == "ehr" or rng.random() < 0.97)
                d.in_log = mode != "ehr" and (mode == "log" or not d.in_ehr or rng.random() < 0.95)
                if d.in_log and d.in_ehr and rng.random() < 0.2:
                    d.log_shift_min = rng.choice((-7, -4, -2, 2, 3, 5, 9))
                if rng.random() < 0.02 and not booster:
                    # pre-dose BP too high: the dose is withheld and the visit repeated
                    d.given = False
                    d.not_given_reason = "bp-too-high"
                    d.adverse = []
                    d.in_log = False
                    lost += 2
                    continue
                return s, lost
            lost += rng.randint(1, 4)
        return None, lost

    def _integrate(self, dose_session: Session) -> None:
        rng, st = self.rng, self.story
        if rng.random() < 0.06:
            return  # skipped
        d = dose_session.dose
        assert d is not None
        r = rng.random()
        if r < 0.5:
            when = d.monitoring_end + dt.timedelta(minutes=15 * rng.randint(4, 16))
            when = when.replace(minute=(when.minute // 15) * 15, second=0)
            if when.hour >= (21 if st.clinic.evening_hours else 19):
                when = slot(rng, when.date() + dt.timedelta(days=1), 8, 17)
        elif r < 0.85:
            when = slot(rng, d.start.date() + dt.timedelta(days=1), 8, 17)
        elif r < 0.94:
            when = slot(rng, d.start.date() + dt.timedelta(days=rng.randint(2, 3)), 8, 17)
        else:
            when = slot(rng, d.start.date() + dt.timedelta(days=rng.randint(4, 6)), 8, 17)  # > 72 h
        s = self.book("integration", when, rng.choice((45, 50, 55, 60, 60)), self.therapist_on(when.date()),
                      telehealth=rng.random() < 0.45)
        s.episode = dose_session.episode
        if s.status == "fulfilled":
            s.has_note = True
            names = {a[1] for a in d.adverse}
            if "Nausea" in names or "Vomiting" in names:
                s.note_topics.append("nausea")
            if "Dizziness" in names:
                s.note_topics.append("dizziness")
            if (d.cadss or 0) > (8 if d.cadss6 else 25) or rng.random() < 0.15:
                s.note_topics.append("detached")
        elif s.status == "noshow" and rng.random() < 0.4:
            s.has_note = True  # a short "did not attend" note

    def _therapy(self, ep: Episode, day: dt.date, course: _Course, assess: tuple[str, ...]) -> Session | None:
        s = self.attend("psychotherapy", day, self.rng.choice((45, 50, 55, 60)), self.therapist_on(day),
                        telehealth=self.rng.random() < 0.5, tries=2)
        if s is not None:
            s.episode = ep
            s.has_note = True
            self._assess(s, s.start + dt.timedelta(minutes=2), course, assess)
        return s

    def _course(self, ep: Episode, course: _Course, day: dt.date, reinduction: bool = False) -> None:
        rng, st = self.rng, self.story
        scales = ("phq9", "gad7") + (("pcl5",) if "ptsd" in st.diagnoses else ())
        # preparation: >= 1, often 3 sessions; consent at the first
        n_prep = 1 if reinduction else pick(rng, ((1, 0.25), (2, 0.25), (3, 0.5)))
        attended = 0
        last_contact = ep.start
        for _ in range(n_prep):
            s = self.attend("preparation", day, rng.choice((50, 60, 75, 90)), self.therapist_on(day),
                            telehealth=rng.random() < 0.3, tries=2)
            if s is not None:
                s.episode = ep
                s.has_note = True
                attended += 1
                last_contact = s.end
                if ep.consent_at is None:
                    ep.consent_at = s.start + dt.timedelta(minutes=10)
                day = s.start.date()
            day = workday(day + dt.timedelta(days=rng.randint(2, 7)))
        if (attended == 0 and rng.random() < 0.7) or rng.random() < 0.04:
            self._fade(ep, last_contact)
            return
        # induction
        plan = induction_plan(ep.route, rng)
        u = rng.random()
        stop_after = 1 if u < 0.2 else rng.randint(2, len(plan) - 1) if u < 0.48 else len(plan)
        first_day = workday(day + dt.timedelta(days=rng.randint(0, 4)))
        delay = 0
        prev_mg: float | None = None
        given: list[Session] = []
        for k, off in enumerate(plan):
            target = first_day + dt.timedelta(days=off + delay)
            if k >= stop_after:
                if rng.random() < 0.6:  # the last booked visit is missed, then silence
                    s = self.book("dosing", slot(rng, workday(target), 8, 14), 150, self.dosing_clinician(),
                                  status=rng.choice(("noshow", "cancelled")))
                    s.episode = ep
                    if s.status == "cancelled" and s.cancelled_at is None:
                        s.cancelled_at = s.start - dt.timedelta(hours=rng.uniform(2, 72))
                        s.cancel_reason = "pat"
                break
            s, lost = self._dose(ep, target, k, prev_mg, booster=False)
            delay += lost
            if s is None:
                break
            d = s.dose
            assert d is not None
            if k == 0:
                ep.first_dose = d.start
                course.first_dose = d.start
                if rng.random() < 0.6:
                    self._assess(s, s.start, course, ("phq9",) + (("gad7",) if rng.random() < 0.5 else ()))
            elif k == 3 and rng.random() < 0.5:
                self._assess(s, s.start, course, ("phq9",))
            prev_mg = d.mg
            given.append(s)
            self._integrate(s)
        if not given:
            self._fade(ep, last_contact)
            return
        last = given[-1]
        completed = len(given) == len(plan)
        if not completed:
            course.weaken()
            if rng.random() < 0.2:   # a dropout answers a phone follow-up
                self._assess(None, last.start + dt.timedelta(days=rng.randint(20, 60)), course, ("phq9",))
            self._followup(ep, course, scales, p=0.15)
            self._fade(ep, last.start)
            return
        eoi = self._therapy(ep, last.start.date() + dt.timedelta(days=rng.randint(1, 7)), course, scales)
        last_activity = eoi.end if eoi else last.end
        end_score = eoi.assessments[0].score if eoi else course.score("phq9", last.end)
        responder = end_score <= course.baseline["phq9"] * 0.5
        if responder and rng.random() < (0.75 if ep.route == "IN" else 0.5):
            day = last.start.date()
            for i, gap in enumerate(booster_gaps(ep.route, rng)):
                day = day + dt.timedelta(days=gap)
                s, _ = self._dose(ep, day, len(plan) + i, prev_mg, booster=True)
                if s is None:
                    break
                d = s.dose
                assert d is not None
                prev_mg = d.mg
                if ep.route == "IN" or rng.random() < 0.5:
                    self._assess(s, s.start, course, ("phq9",))
                if rng.random() < 0.6:
                    self._integrate(s)
                last_activity = s.end
                day = s.start.date()
        if rng.random() < 0.4:  # ongoing psychotherapy
            day = last_activity.date()
            for _ in range(rng.randint(2, 5)):
                day = day + dt.timedelta(days=rng.randint(21, 35))
                s = self._therapy(ep, day, course, ("phq9",) if rng.random() < 0.6 else ())
                if s is not None:
                    last_activity = s.end
        self._followup(ep, course, scales, p=0.65)
        if rng.random() < 0.8:
            ds = self.attend("discharge", workday(last_activity.date() + dt.timedelta(days=rng.randint(7, 28))),
                             30, st.prescriber, telehealth=rng.random() < 0.3, tries=2)
            if ds is not None:
                ds.episode = ep
                ds.document = "discharge" if rng.random() < 0.3 else None
                ep.end, ep.end_status = ds.end, "finished"
        # relapse: symptoms return and a new induction starts (one re-induction at most)
        if (not reinduction and course.relapse_day is not None and ep.first_dose is not None
                and rng.random() < 0.5):
            back = ep.first_dose + dt.timedelta(days=course.relapse_day + rng.randint(14, 35))
            if ep.end is None or ep.end < back:
                if ep.end is None:
                    ep.end, ep.end_status = back - dt.timedelta(days=1), "finished"
                new = Episode(ep.number + 1, back, ep.route)
                st.episodes.append(new)
                fresh = _Course(rng, {k: course.score(k, back) for k in INSTRUMENT_MAX})
                fresh.baseline["phq9"] = max(fresh.baseline["phq9"], 10)
                self._course(new, fresh, workday(back.date() + dt.timedelta(days=2)), reinduction=True)

    def _followup(self, ep: Episode, course: _Course, scales: tuple[str, ...], p: float) -> None:
        """The 4-8 month assessment (HEDIS DRR-E window 120-240 days after the first dose)."""
        if ep.first_dose is None or self.rng.random() >= p:
            return
        day = ep.first_dose.date() + dt.timedelta(days=self.rng.randint(120, 240))
        if self.rng.random() < 0.5:
            self._assess(None, slot(self.rng, day, 7, 21), course, scales)  # patient portal
        else:
            self._therapy(ep, workday(day), course, scales)

    def _fade(self, ep: Episode, last_contact: dt.datetime) -> None:
        """Dropout: mostly silence; sometimes the clinic closes the episode weeks later."""
        if self.rng.random() < 0.3:
            ep.end = last_contact + dt.timedelta(days=self.rng.randint(45, 90))
            ep.end_status = "cancelled"


def simulate_patient(index: int, rng: random.Random, net: Network, start: dt.date, days: int,
                     team_rng: random.Random | None = None) -> Story:
    return PatientSimulation(index, rng, net, start, days, team_rng).run()
