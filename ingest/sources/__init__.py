"""Source readers: each turns the lines of one landing file into candidate records, in SQL.

Every reader is a function `records_sql(ctx) -> str` returning one SELECT over the temp table
`_kap_lines(line_number BIGINT, line VARCHAR)` (blank lines already removed, BOM and trailing CR
stripped) that yields exactly the columns of `RECORD_COLUMNS`, one row per line. The loader then
resolves patients, applies the checks common to all sources (unknown patient, future time, before
birth, duplicates), writes events and quarantine rows, and reconciles the counts.

Each reader module also has `quarantine_sql(ctx) -> str`: an expression over the column `line`
giving the redacted copy stored in `raw.quarantine.raw_record` (only evaluated for rejected lines).
Readers never emit direct identifiers into `payload`, and `raw_record` is redacted (`kap_redact`):
names, addresses' street/city, telecom and identifier values, birth dates, narrative and free text,
attachment data, MRNs and note text are replaced by "[redacted]". The landing file stays immutable,
so `file` + `line_number` always lead back to the verbatim original.
"""
from __future__ import annotations

from dataclasses import dataclass

# name, SQL type: the columns every reader returns, in this order
RECORD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("line_number", "BIGINT"),
    ("ignored", "BOOLEAN"),          # a record the pipeline does not read (foreign FHIR type)
    ("reason", "VARCHAR"),           # first failed source-specific check, or NULL
    ("detail", "VARCHAR"),
    ("event_type", "VARCHAR"),
    ("source_record_id", "VARCHAR"),
    ("version_key", "VARCHAR"),
    ("ref_kind", "VARCHAR"),         # 'fhir' | 'mrn' | NULL: how the record names its patient
    ("ref_value", "VARCHAR"),
    ("needs_patient", "BOOLEAN"),    # unknown_patient applies when no key is found
    ("occurred_at", "TIMESTAMP"),
    ("recorded_at", "TIMESTAMP"),
    ("check_time", "BOOLEAN"),       # apply future_time / before_birth to occurred_at
    ("payload", "JSON"),
    ("key_fhir_id", "VARCHAR"),      # Patient resources: identifiers to key
    ("key_mrn", "VARCHAR"),
    ("birth_year", "INTEGER"),
    ("local_clock", "BOOLEAN"),      # a clinical time was sent without a UTC offset (ingest/clocks.py)
)

KAP_SYSTEM = "http://kap-pipeline.example/fhir/CodeSystem/kap"

_REDACT_KEYS = ("family|given|prefix|suffix|line|city|district|display|div|data|text|value|comment|"
                "description|authorString|patientInstruction|birthDate|patient_mrn|mrn|ssn|phone|"
                "email|name_text|address|valueString|valueDate|abatementString|answer_text")

MACROS = rf"""
CREATE OR REPLACE TEMP MACRO kap_ts(s) AS TRY_CAST(s AS TIMESTAMPTZ)::TIMESTAMP;
CREATE OR REPLACE TEMP MACRO kap_iso(t) AS strftime(t, '%Y-%m-%dT%H:%M:%SZ');
-- a date-time with a time of day but no UTC offset ('2025-03-04T19:30:00'); a bare date is not one
CREATE OR REPLACE TEMP MACRO kap_naive_ts(s) AS coalesce(
    regexp_matches(s, '^\s*\d{{4}}-\d{{2}}-\d{{2}}[T ]\d{{2}}:\d{{2}}')
    AND NOT regexp_matches(s, '(Z|z|[+-]\d{{2}}(:?\d{{2}})?)\s*$'), false);
CREATE OR REPLACE TEMP MACRO kap_bad_ts(s) AS (s IS NOT NULL AND s <> '' AND kap_ts(s) IS NULL);
CREATE OR REPLACE TEMP MACRO kap_ref_id(r) AS nullif(regexp_extract(r, '([^/#]+)$', 1), '');
CREATE OR REPLACE TEMP MACRO kap_redact(s) AS regexp_replace(regexp_replace(s,
    '"({_REDACT_KEYS})"\s*:\s*("(?:[^"\\]|\\.)*("|$)|\[(?:\s*"(?:[^"\\]|\\.)*("|$)\s*,?)*\s*(\]|$))',
    '"\1":"[redacted]"', 'g'),
    'identifier=[^"&\s]*', 'identifier=[redacted]', 'g');
"""


@dataclass(frozen=True)
class Context:
    """What a reader may need to know about the file and the run."""

    file_id: str
    source: str
    ingested_at: object      # datetime, UTC
    header: list[str] | None = None   # CSV header names, in file order
    resource_types: tuple[str, ...] | None = None   # FHIR: build SQL only for these (None = all)
    time_zones: tuple[tuple[str, str], ...] = ()    # (clinic_id, zone): the per-clinic setting
    default_time_zone: str | None = None            # zone of a clinic without one (ingest/clocks.py)
    known_at: object = None   # knowledge time of a record without its own: the drop's manifest
                              # transactionTime, else (None) the ingest time (`$known_at` in SQL)


def select_columns(expressions: dict[str, str]) -> str:
    """Render `expr AS col` for every RECORD_COLUMNS entry, casting to its type (NULL if absent)."""
    parts = []
    for name, typ in RECORD_COLUMNS:
        expr = expressions.get(name, "NULL")
        parts.append(f"CAST({expr} AS {typ}) AS {name}")
    return ",\n    ".join(parts)


def first_failure(checks: list[tuple[str, str, str]]) -> str:
    """One CASE over ordered (condition, reason, detail-SQL) checks -> STRUCT(r, d) or NULL.

    Conditions are evaluated once per row, first failure wins; select `.r` and `.d` from it.
    """
    whens = " ".join(f"WHEN {c} THEN {{'r': '{r}', 'd': CAST({d} AS VARCHAR)}}" for c, r, d in checks)
    return f"CASE {whens} ELSE NULL::STRUCT(r VARCHAR, d VARCHAR) END"


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"
