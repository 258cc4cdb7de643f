"""Note tags: clinical NLP rules over therapy-note text, the only place note text is read.

What a tag means: the note has at least one *current, affirmed* mention of the concept for the
patient. A mention is found by a target rule (a phrase, matched case-blind on spaCy tokens); it is
dropped when, within its sentence and before a terminating word ("but", "however", ...), a
modifier makes it:
- negated      ("denies nausea", "no dizziness", "nausea was not reported");
- hypothetical ("discussed what to expect, including dissociation", "if she feels dizzy");
- historical   ("history of migraines", "at screening, hypertension not controlled");
- about family or another person ("her mother died by suicide", "his partner had a panic attack").
This is the ConText algorithm's shape. medspaCy (which implements ConText) cannot live in the
project environment: on Python 3.11 medspaCy 1.3.1 requires spaCy < 3.8, whose thinc < 8.3 is
built for numpy < 2, while the stack runs on numpy 2. So the engine is negspacy's NegEx on spaCy
3.8 - four instances, one per modifier class, each with its own trigger lists (negation: negspacy's
clinical termset plus a few of ours; the other three: ours) writing its own span attribute.

Rule-based only: `spacy.blank("en")` (tokenizer), the rule sentencizer, an entity ruler holding the
target rules, and the NegEx instances. No model is downloaded, ever. The text is never stored: the
caller keeps only the tags. Adverse-event tags here are mention-level; keeping them only for notes
after a dose is the warehouse's rule (dbt: int_therapy_sessions_unified).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

# tag -> target phrases (matched on lower-cased tokens, so punctuation splits as spaCy tokenizes)
TARGETS: dict[str, tuple[str, ...]] = {
    "ae_nausea": ("nausea", "nauseous", "nauseated", "nauseas", "queasy", "queasiness", "vomit",
                  "vomited", "vomiting", "threw up", "throwing up", "sick to her stomach",
                  "sick to his stomach", "sick to my stomach", "sick to their stomach", "emesis"),
    "ae_dizziness": ("dizzy", "dizziness", "lightheaded", "light-headed", "light headed",
                     "lightheadedness", "light-headedness", "vertigo", "unsteady on her feet",
                     "unsteady on his feet", "unsteady on their feet", "woozy"),
    "ae_dissociation": ("dissociation", "dissociative", "dissociated", "dissociating", "dissociate",
                        "out-of-body", "out of body", "out of her body", "out of his body",
                        "depersonalization", "depersonalisation", "derealization", "derealisation",
                        "detached from the body", "detached from her body", "detached from his body",
                        "detached from their body", "detached from my body", "detached from reality",
                        "detached from her surroundings", "detached from his surroundings",
                        "disconnected from her body", "disconnected from his body", "felt unreal",
                        "feeling unreal"),
    "ae_anxiety": ("anxious", "anxiety", "panic", "panicky", "panic attack", "panicked", "agitated",
                   "agitation", "jittery", "on edge"),
    "ae_headache": ("headache", "headaches", "head ache", "migraine", "migraines", "head was pounding",
                    "pounding head"),
    "ae_elevated_bp": ("hypertension", "hypertensive", "high blood pressure", "elevated blood pressure",
                       "raised blood pressure", "blood pressure was high", "blood pressure was elevated",
                       "blood pressure was raised", "blood pressure went up", "blood pressure rose",
                       "blood pressure spiked", "blood pressure spike", "bp was high", "bp was elevated",
                       "elevated bp", "high bp", "bp spike", "bp spiked", "bp rose"),
    "risk_suicidality": ("suicidal", "suicidality", "suicide", "suicidal ideation", "suicidal thoughts",
                         "kill myself", "kill herself", "kill himself", "kill themselves",
                         "end my life", "end her life", "end his life", "end their life",
                         "self-harm", "self harm", "harm herself", "harm himself", "harm themselves",
                         "hurt herself", "hurt himself", "want to die", "wants to die", "wanted to die",
                         "wish she were dead", "wish he were dead", "wished she were dead",
                         "wished he were dead", "better off dead", "not want to be alive",
                         "no reason to live", "not worth living", "overdose on purpose"),
}
# Abbreviations matched case-sensitively (lower-case "si" is a word in other languages).
TOKEN_TARGETS: tuple[tuple[str, list[dict]], ...] = (
    ("risk_suicidality", [{"ORTH": "SI"}]),
    ("risk_suicidality", [{"ORTH": "SH"}]),
    ("ae_elevated_bp", [{"ORTH": "HTN"}]),
)
# Longer phrases that contain a target word but are not the event (a diagnosis, a scale, a form):
# the entity ruler prefers the longer match, and these labels raise no tag.
NOT_EVENTS: tuple[str, ...] = (
    "generalized anxiety", "generalised anxiety", "generalized anxiety disorder", "anxiety disorder",
    "social anxiety", "panic disorder", "health anxiety", "anxiety score", "anxiety scores",
    "anxiety scale", "anxiety symptoms scale", "anxiety measures", "suicide risk assessment",
    "suicide risk screen", "suicide screening", "suicide prevention", "suicide hotline",
    "suicide prevention lifeline", "suicide crisis line", "blood pressure cuff", "blood pressure monitor",
)

# Modifier triggers. "preceding" ones govern mentions after them, "following" ones mentions
# before them, both up to the end of the sentence or a termination word.
_TERMINATION_EXTRA = ("today", "now", "currently", "this session", "this week", "after the dose",
                      "after dosing", "after the session", "during the session", "post-dose", "since",
                      "then", "and then", "later", "whereas", "while", ";")
MODIFIERS: dict[str, dict[str, tuple[str, ...]]] = {
    "hypothetical": {
        "pseudo_negations": ("if any", "no matter"),
        "preceding_negations": (
            "if", "in case", "should she", "should he", "should they", "could experience",
            "could feel", "could cause", "could have", "may experience", "may feel", "may cause",
            "may have", "may notice", "might", "possible", "possibility of", "risk of", "risks of", "risks including", "chance of",
            "expect", "expectations of", "expectations about", "what to expect",
            "educated", "education on", "education about", "psychoeducation", "explained that",
            "informed about", "warned",
            "warning signs", "watch for", "monitor for", "monitoring for", "screen for",
            "screened for", "screening for", "assessed for", "assess for", "asked about",
            "asked whether", "questions about", "worried about", "worries about", "worried that",
            "concerned about", "concern about", "fear of", "fears of", "afraid of", "afraid that",
            "anticipate", "anticipates", "anticipated", "anticipating", "prepare for",
            "prepared for", "preparing for", "plan for", "in the event of", "whether", "unless",
            "can cause", "can occur", "common side effects", "side effects such as",
            "side effects include", "side effects including", "rarely", "prn", "as needed",
            "to manage", "to reduce", "to prevent", "prevention of", "coping with any",
        ),
        "following_negations": ("is possible", "are possible", "can occur", "may occur", "might occur",
                                "could occur", "can happen", "may happen", "was discussed",
                                "were discussed", "was reviewed", "were reviewed", "is common",
                                "are common", "as a possible side effect", "as possible side effects",
                                "if it occurs", "if they occur", "should it occur"),
        "termination": ("but", "however", "although", "though", "yet", "except", "which",
                        *_TERMINATION_EXTRA),
    },
    "historical": {
        "pseudo_negations": ("history of present illness",),
        "preceding_negations": (
            "history of", "hx of", "h/o", "in the past", "past history", "previous history",
            "previously diagnosed", "prior history", "prior to treatment", "prior to ketamine",
            "formerly", "former", "remote", "childhood", "as a child", "as a teenager",
            "in adolescence", "in her twenties", "in his twenties", "years ago", "last year",
            "at baseline", "baseline", "at screening", "at intake", "on screening", "screening",
            "contraindication", "contraindications", "pre-existing", "preexisting", "known",
            "chronic", "longstanding", "long-standing", "diagnosed with", "diagnosis of",
            "treated for", "being treated for", "on medication for", "managed with",
            "before treatment", "before starting", "before the first dose", "before ketamine",
            "presents with", "referred for", "referral for",
        ),
        "following_negations": ("in the past", "years ago", "last year", "as a teenager", "as a child",
                                "in adolescence", "before treatment", "before starting treatment",
                                "prior to treatment", "at baseline", "at screening", "at intake",
                                "before the first dose", "before ketamine", "not controlled",
                                "is controlled", "well controlled", "poorly controlled", "uncontrolled",
                                "on medication", "history"),
        "termination": ("but", "however", "although", "though", "yet", "except", "which",
                        *_TERMINATION_EXTRA),
    },
    "family": {
        "pseudo_negations": ("mother of", "father of"),
        "preceding_negations": (
            "mother", "mother's", "father", "father's", "mom", "mom's", "dad", "dad's", "brother",
            "brother's", "sister", "sister's", "sibling", "siblings", "aunt", "uncle", "grandmother",
            "grandfather", "grandparent", "cousin", "son", "son's", "daughter", "daughter's",
            "family history", "family hx", "fhx", "family member", "relative", "partner",
            "partner's", "husband", "husband's", "wife", "wife's", "friend", "friend's",
            "boyfriend", "girlfriend", "spouse", "roommate", "colleague", "coworker", "another patient",
        ),
        "following_negations": ("in the family", "in her family", "in his family", "runs in the family"),
        "termination": ("but", "however", "although", "though", "yet", "except", "which", "she", "he",
                        "they", "patient", *_TERMINATION_EXTRA),
    },
}
_NEGATION_EXTRA = {
    "preceding_negations": ("no longer", "nor", "no further", "not any", "absent", "resolved of",
                            "did not report", "does not report", "did not experience",
                            "did not have", "has not had", "have not had", "none of", "ruled out",
                            "not endorsing", "did not endorse", "does not endorse", "not endorse",
                            "not experiencing", "without any", "zero", "free from"),
    "following_negations": ("denied", "denies", "was denied", "were denied", "absent", "not present",
                            "not reported", "was not reported", "were not reported", "none",
                            "not endorsed", "not experienced", "did not occur", "not observed",
                            "not noted", "ruled out"),
    "termination": ("today", "now", "currently", "since", "whereas", "while", ";"),
    "pseudo_negations": ("no change", "not only", "not sure", "no longer denies", "not stop", "could not stop",
                         "cannot stop", "can't stop", "couldn't stop", "not get rid of", "no relief from"),
}
ASSERTIONS = ("negated", "hypothetical", "historical", "family")
AE_TAGS = tuple(t for t in TARGETS if t.startswith("ae_"))
TAGS = tuple(TARGETS)

_lock = threading.Lock()
_nlp = None


def _negation_termset() -> dict[str, list[str]]:
    from negspacy.termsets import termset

    base = termset("en_clinical").get_patterns()
    return {k: sorted(set(v) | set(_NEGATION_EXTRA.get(k, ()))) for k, v in base.items()}


def build_pipeline():
    """spaCy's blank English pipeline with the rules above (no trained model, nothing downloaded)."""
    import spacy
    from negspacy.negation import Negex  # noqa: F401 - registers the "negex" factory

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER", "overwrite_ents": True})
    patterns = [{"label": tag, "pattern": phrase} for tag, phrases in TARGETS.items() for phrase in phrases]
    patterns += [{"label": tag, "pattern": tokens} for tag, tokens in TOKEN_TARGETS]
    patterns += [{"label": "NOT_EVENT", "pattern": phrase} for phrase in NOT_EVENTS]
    ruler.add_patterns(patterns)
    termsets = {"negated": _negation_termset(),
                **{name: {k: list(v) for k, v in sets.items()} for name, sets in MODIFIERS.items()}}
    for name in ASSERTIONS:
        nlp.add_pipe("negex", name=f"context_{name}",
                     config={"neg_termset": termsets[name], "extension_name": name, "ent_types": list(TAGS)})
    return nlp


def _pipeline():
    global _nlp
    if _nlp is None:
        _nlp = build_pipeline()
    return _nlp


def mentions(doc) -> list[tuple[str, str, dict[str, bool]]]:
    """(tag, matched text, modifiers) of every target mention in a processed doc (for tests)."""
    return [(e.label_, e.text, {a: bool(e._.get(a)) for a in ASSERTIONS})
            for e in doc.ents if e.label_ in TARGETS]


def tags_of(doc) -> list[str]:
    """The tags with at least one current, affirmed mention, sorted."""
    return sorted({e.label_ for e in doc.ents
                   if e.label_ in TARGETS and not any(e._.get(a) for a in ASSERTIONS)})


def _candidate_finder(nlp):
    """A necessary condition for a target mention, checked without running the pipeline: the entity
    ruler matches a phrase's tokens (lower-cased) on consecutive tokens of the text, and between
    consecutive tokens a text has nothing or one space (other whitespace is a token of its own).
    So a text whose lower-cased form has no phrase's tokens joined by nothing or one space, and none
    of the case-sensitive abbreviations, has no target mention and no tag."""
    import re

    alternatives = sorted({" ?".join(re.escape(t.lower_) for t in nlp.make_doc(phrase))
                           for phrases in TARGETS.values() for phrase in phrases}, key=len, reverse=True)
    phrases = re.compile("|".join(alternatives))
    abbreviations = tuple(pattern[0]["ORTH"] for _, pattern in TOKEN_TARGETS)
    return lambda text: phrases.search(text.lower()) is not None or any(a in text for a in abbreviations)


def tag_texts(texts: Iterable[str | None], batch_size: int = 256) -> list[list[str]]:
    """Tags for each text, in order (None or empty text: no tags). Batched through nlp.pipe; one
    caller at a time (the pipeline is shared). Only texts that can hold a target mention go through
    the pipeline (`_candidate_finder`; about one in five generated notes), and the modifier
    components run only on docs with a mention, which is all they would change anyway."""
    items: Sequence[str | None] = texts if isinstance(texts, Sequence) else list(texts)
    contexts = [f"context_{name}" for name in ASSERTIONS]
    out: list[list[str]] = [[] for _ in items]
    with _lock:
        global _may_mention
        nlp = _pipeline()
        if _may_mention is None:
            _may_mention = _candidate_finder(nlp)
        chosen = [i for i, text in enumerate(items) if text and _may_mention(text)]
        modifiers = [nlp.get_pipe(name) for name in contexts]
        with nlp.select_pipes(disable=contexts):
            for i, doc in zip(chosen, nlp.pipe((items[i] for i in chosen), batch_size=batch_size)):
                if not doc.ents:
                    continue
                for modifier in modifiers:
                    doc = modifier(doc)
                out[i] = tags_of(doc)
    return out


_may_mention = None
