"""Therapy-note export (`notes/*.jsonl`) -> candidate records, in one SQL statement per file.

The note text is never stored (DOMAIN.md section 6): the event keeps its sha256, its length and
tags derived by clinical NLP rules (ingest/note_tags.py: target rules with negation, hypothetical,
historical and family modifiers; only current, affirmed mentions count). Tagging needs Python on
the text, so it runs once per file before the file's SQL: `prepare_lines` reads the texts of the
file's JSON lines in one query, tags them in one batch (spaCy `nlp.pipe`) and leaves
`_kap_note_tags(line_number, tags)` for the records statement to join; parsing, validation and
the payload stay one SQL statement over the whole file. The quarantine copy of a line has `text` removed and the MRN masked; a line that is not a JSON object
is kept only in redacted form (text-like values masked), since it may hold note text.
"""
from __future__ import annotations

import json

from ingest import note_tags
from ingest.sources import Context, first_failure, select_columns, sql_str

FIELDS = ("note_id", "patient_mrn", "clinic_id", "therapist_id", "session_type", "modality",
          "session_start", "session_end", "attended", "status", "signed_at", "amended_at", "text")
REQUIRED = ("note_id", "patient_mrn", "clinic_id", "therapist_id", "session_type", "session_start",
            "session_end", "signed_at")
SESSION_TYPES = ("consult", "preparation", "integration", "psychotherapy")
MODALITIES = ("cbt", "mbct", "emdr", "ifs", "fap", "act", "supportive", "other")
STATUSES = ("final", "amended", "entered-in-error")

TAG_TABLE = "_kap_note_tags"


def prepare_lines(con) -> None:
    """Tag the texts of the file's lines (in `_kap_lines`) in one batch -> temp table
    _kap_note_tags(line_number, tags). Only the tags leave this function."""
    rows = con.execute(r"""
        SELECT line_number, json_extract_string(line, '$.text')
        FROM _kap_lines
        WHERE json_valid(line) AND regexp_matches(line, '^\s*\{')
          AND json_type(line, '$.text') = 'VARCHAR'""").fetchall()
    tags = note_tags.tag_texts([text for _, text in rows])
    con.execute(f"CREATE OR REPLACE TEMP TABLE {TAG_TABLE} (line_number BIGINT, tags VARCHAR[])")
    tagged = [(n, t) for (n, _), t in zip(rows, tags) if t]
    if tagged:
        con.execute(f"INSERT INTO {TAG_TABLE} SELECT unnest($1::BIGINT[]), unnest($2::VARCHAR[][])",
                    [[n for n, _ in tagged], [t for _, t in tagged]])


def records_sql(ctx: Context) -> str:
    structure = sql_str(json.dumps({f: "VARCHAR" for f in FIELDS}))
    checks: list[tuple[str, str, str]] = [
        ("NOT ok", "unparseable", "'not valid JSON'"),
        ("NOT is_obj", "not_an_object", "'JSON value is not an object'"),
    ]
    checks += [(f"nullif(trim(j.{f}), '') IS NULL", "missing_required_field", sql_str(f)) for f in REQUIRED]
    checks += [(f"kap_bad_ts(j.{f})", "wrong_type", sql_str(f))
               for f in ("session_start", "session_end", "signed_at", "amended_at")]
    checks += [
        ("j.attended IS NOT NULL AND attended IS NULL", "wrong_type", "'attended'"),
        (f"status NOT IN {STATUSES}", "invalid_code", "'status'"),
        ("status = 'entered-in-error'", "__ok__", "NULL"),
        (f"lower(j.session_type) NOT IN {SESSION_TYPES}", "invalid_code", "'session_type'"),
        (f"j.modality IS NOT NULL AND lower(j.modality) NOT IN {MODALITIES}", "invalid_code", "'modality'"),
        ("end_at < start_at", "end_before_start", "'session_end < session_start'"),
    ]
    check = first_failure(checks)
    tags = "coalesce(note_tags, []::VARCHAR[])"
    modality = ("CASE lower(j.modality) " + " ".join(
        f"WHEN '{m}' THEN '{m.upper() if m not in ('supportive', 'other') else m}'" for m in MODALITIES) + " END")
    payload = f"""CASE WHEN status = 'entered-in-error'
        THEN json_object('retracted_resource', 'note', 'reason', 'entered-in-error')
        ELSE json_object('note_id', j.note_id, 'clinic_id', j.clinic_id, 'therapist_id', j.therapist_id,
            'session_type', lower(j.session_type), 'modality', {modality},
            'start_at', kap_iso(start_at), 'end_at', kap_iso(end_at),
            'duration_min', round(date_diff('second', start_at, end_at) / 60.0, 1),
            'attended', coalesce(attended, true), 'status', status,
            'text_sha256', CASE WHEN j.text IS NOT NULL THEN sha256(j.text) END,
            'text_length', length(j.text), 'tags', {tags}) END"""
    cols = select_columns({
        "line_number": "line_number",
        "ignored": "false",
        "reason": "CASE WHEN NOT starts_with(chk.r, '__') THEN chk.r END",
        "detail": "CASE WHEN NOT starts_with(chk.r, '__') THEN chk.d END",
        "event_type": "CASE WHEN status = 'entered-in-error' THEN 'record_retracted' ELSE 'therapy_note_documented' END",
        "source_record_id": "j.note_id",
        "version_key": "coalesce(kap_iso(coalesce(amended_at, signed_at)), '') || '|' || coalesce(status, '')",
        "ref_kind": "'mrn'",
        "ref_value": "j.patient_mrn",
        "needs_patient": "true",
        "occurred_at": "coalesce(start_at, amended_at, signed_at, $ingested_at)",
        "recorded_at": "coalesce(amended_at, signed_at, $ingested_at)",
        "check_time": "(start_at IS NOT NULL AND status <> 'entered-in-error')",
        "payload": payload,
        "local_clock": "status <> 'entered-in-error' AND (kap_naive_ts(j.session_start) OR kap_naive_ts(j.session_end))",
    })
    return f"""
WITH parsed AS (
    SELECT line_number, line, ok, (ok AND regexp_matches(line, '^\\s*\\{{')) AS is_obj,
           json_transform(CASE WHEN ok THEN line END, {structure}) AS j
    FROM (SELECT line_number, line, json_valid(line) AS ok FROM _kap_lines)
), tagged AS (
    SELECT p.*, nt.tags AS note_tags
    FROM parsed AS p
    LEFT JOIN {TAG_TABLE} AS nt USING (line_number)
), typed AS (
    SELECT *,
        coalesce(lower(nullif(trim(j.status), '')), 'final') AS status,
        kap_ts(j.session_start) AS start_at, kap_ts(j.session_end) AS end_at,
        kap_ts(j.signed_at) AS signed_at, kap_ts(j.amended_at) AS amended_at,
        CASE WHEN lower(j.attended) IN ('true', '1', 'yes') THEN true
             WHEN lower(j.attended) IN ('false', '0', 'no') THEN false END AS attended
    FROM tagged
), checked AS (
    SELECT *, {check} AS chk FROM typed
)
SELECT
    {cols}
FROM checked
"""


def quarantine_sql(ctx: Context) -> str:
    """A valid object keeps its fields with `text` removed and identifiers masked. Any other line
    is withheld whole: where the JSON is broken, nothing can tell note text from the rest, and
    note text must never be stored. File and line number lead back to the original."""
    return """CASE WHEN json_valid(line) AND json_valid(kap_redact(line)) AND regexp_matches(line, '^\\s*\\{')
                   THEN json_merge_patch(kap_redact(line), '{"text": null}')::VARCHAR
                   ELSE '[withheld: not a JSON object, ' || length(line) || ' characters, sha256 '
                        || sha256(line) || ']' END"""
