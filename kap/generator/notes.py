"""Therapy-note export lines and note text (which names the patient, as real notes do)."""
from __future__ import annotations

import datetime as dt
import random

from .common import ts, ts_utc
from .model import Session, Story

_OPENERS = {
    "consult": ("{name} attended an intake evaluation for ketamine-assisted psychotherapy, referred for {dx}.",
                "Initial consultation with {name} to review history of {dx} and prior treatments."),
    "preparation": ("Preparation session with {name}. We discussed what to expect during the medicine session "
                    "and set intentions.",
                    "{name} came for preparation; we reviewed set and setting, safety and consent questions."),
    "integration": ("Integration session with {name} following the recent ketamine session.",
                    "{name} met for integration to reflect on the dosing session."),
    "psychotherapy": ("Follow-up psychotherapy with {name}.",
                      "{name} attended a regular therapy session to consolidate gains."),
}
_MODALITY = {
    "CBT": "We used cognitive restructuring around self-critical thoughts and assigned a thought record.",
    "MBCT": "We practised a body scan and discussed noticing rumination without engaging it.",
    "EMDR": "We continued EMDR resourcing and identified a target memory for later processing.",
    "IFS": "We explored protective parts that surfaced and the young part holding grief.",
    "FAP": "We attended to in-session interpersonal behaviour and how {name} asks for support.",
    "ACT": "We clarified values around family and work and practised defusion from 'I am broken'.",
    "supportive": "Supportive counselling; {name} processed recent stressors and sleep.",
    "other": "Psychoeducation on neuroplasticity and the window after dosing.",
}
_TOPICS = {
    "nausea": "{name} reported mild nausea after the dose, which settled within the hour.",
    "dizziness": "{name} noted some dizziness on standing after the session.",
    "detached": "{name} described feeling detached from the body and a sense of floating during the session.",
    "risk": "{name} endorsed passive suicidal ideation without plan or intent; safety plan reviewed and updated.",
}
_CLOSERS = ("Plan: continue as scheduled.", "Next session booked.", "Will review mood scales next visit.",
            "Homework: journal daily for ten minutes.")
_DX_TEXT = {"mdd": "treatment-resistant depression", "ptsd": "PTSD", "gad": "generalized anxiety"}


def note_text(story: Story, session: Session, rng: random.Random) -> str:
    name = story.person.given
    if session.status != "fulfilled":
        return f"{name} did not attend the scheduled {session.kind} session. Outreach call placed, voicemail left."
    parts = [rng.choice(_OPENERS[session.kind]).format(name=name, dx=_DX_TEXT[story.diagnoses[0]])]
    if session.kind != "consult":
        parts.append(_MODALITY[story.modality].format(name=name))
    parts += [_TOPICS[t].format(name=name) for t in session.note_topics]
    parts.append(rng.choice(_CLOSERS))
    return " ".join(parts)


def document_text(story: Story, session: Session) -> str:
    p = story.person
    head = "CONSULT NOTE" if session.document == "consult" else "DISCHARGE SUMMARY"
    body = (f"Patient: {p.given} {p.family}  DOB: {p.birth_date.isoformat()}  MRN: {p.mrn}\n"
            f"Clinic: {story.clinic.name}\n")
    if session.document == "consult":
        body += (f"{p.given} presents with {_DX_TEXT[story.diagnoses[0]]}. Screening completed; "
                 f"{'contraindication found' if story.contraindication else 'eligible for KAP'}.\n")
    else:
        body += f"{p.given} completed the ketamine course and is discharged to community follow-up.\n"
    return f"{head}\n{body}"


def note_record(story: Story, session: Session, note_no: int, rng: random.Random,
                cutoff: dt.datetime) -> dict | None:
    """One export line, or None when the note is not signed by the export cutoff."""
    c = story.clinic
    signed = session.end + dt.timedelta(minutes=rng.randint(10, 240))
    if rng.random() < 0.1:
        signed += dt.timedelta(days=rng.randint(1, 5))   # signed late
    if signed > cutoff:
        return None
    # most clinics' note systems export UTC; odd-numbered clinics keep local offsets
    local = int(c.id[-2:]) % 2 == 1
    fmt = (lambda t: ts(t, c.offset)) if local else (lambda t: ts_utc(t, c.utc_offset))
    rec = {
        "note_id": f"note-{story.person.index + 1:06d}-{note_no:03d}",
        "patient_mrn": story.person.mrn,
        "clinic_id": c.id,
        "therapist_id": session.practitioner.id,
        "session_type": session.kind,
        "modality": story.modality if session.kind != "consult" else None,
        "session_start": fmt(session.start),
        "session_end": fmt(session.end),
        "attended": session.status == "fulfilled",
        "status": "final",
        "signed_at": fmt(signed),
        "text": note_text(story, session, rng),
    }
    if rec["modality"] is None:
        del rec["modality"]
    return rec
