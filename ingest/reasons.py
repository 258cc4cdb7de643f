"""Reason codes for rejected records (raw.quarantine) and rejected files (raw.ingest_files).

One documented list, rendered into docs/quarantine.md by `kap docs`.
"""
from __future__ import annotations

RECORD_REASONS: dict[str, str] = {
    "unparseable": "The line is not valid JSON, or the CSV row cannot be split into the header's columns.",
    "invalid_encoding": "The line is not valid UTF-8.",
    "not_an_object": "The JSON line is valid but not an object (an array, a string, a number).",
    "missing_resource_type": "A FHIR line without `resourceType`.",
    "missing_required_field": "A required element/column is empty or absent (detail names it).",
    "wrong_type": "A value cannot be read as its type: a non-numeric dose, a malformed timestamp (detail names the field).",
    "invalid_code": "A coded value outside its value set: unknown route, drug, status or session type.",
    "missing_value": "An Observation with no value (`dataAbsentReason`, or no value[x]/component).",
    "unknown_instrument": "An Observation whose code is neither a known instrument nor a known vital sign.",
    "out_of_range": "A value outside its plausible range: dose per route, BP, SpO2, heart rate, a score beyond its instrument's maximum.",
    "invalid_identifier": "An identifier (the record's id, the patient reference or MRN, or a field named `*_id`) does not match the pattern: a letter or digit, then letters, digits and `. - _ :`, at most 64 characters (detail names the field).",
    "unknown_patient": "The record names a patient (reference or MRN) the warehouse does not know (yet): parked, and released when the patient arrives (restricted.parked_records).",
    "identity_conflict": "A Patient whose identity collides with a known patient: its MRN is held by another Patient.id (no Patient.link merges them), or a known Patient.id arrives with another MRN. Never merged: parked until resolved.",
    "unknown_clinic": "A dosing-log row or note names a clinic_id that is no clinic (Organization/Location) of the log (yet): parked, and released when the clinic arrives.",
    "future_time": "The record happened more than a day after it was ingested.",
    "before_birth": "The record happened before the patient's birth year.",
    "end_before_start": "An end time earlier than its start time.",
    "timestamp_without_offset": "A clinical time without a UTC offset (`2025-03-04T19:30:00`) whose clinic has no time zone (no FHIR timezone extension, no KAP_CLINIC_TIMEZONES entry, no KAP_TIMEZONE): it cannot be placed in UTC.",
    "conflicting_duplicate": "The same record id and version arrived again with different content.",
    "duplicate_in_file": "The same record id and version appears twice in one file (the first is kept).",
    "recorded_after_ingest": "The record's knowledge time (meta.lastUpdated, recorded_at, amended_at, signed_at) is later than the time its file was ingested plus the allowed clock skew (ingest/knowledge.py): impossible, and it would move \"now\".",
    "superseded_in_file": "A FHIR resource without meta.versionId/lastUpdated appears again later in the same file with other content: the later line wins.",
}

FILE_REASONS: dict[str, str] = {
    "empty_file": "The file has no bytes or no records (header only).",
    "missing_columns": "A CSV lacks a required column (detail names them).",
    "compressed_without_extension": "The file is gzip data but its name lacks `.gz`.",
    "outside_landing": "A symlink or path that resolves outside the landing folder.",
    "unstable_file": "The file changed while it was read (still being written); it is retried on the next run.",
    "unreadable": "The file cannot be opened or decoded at all.",
    "file_too_large": "The file holds more bytes than `KAP_MAX_FILE_BYTES` once decompressed (checked while a gzip file streams, so a decompression bomb is stopped early).",
    "expansion_ratio_exceeded": "A gzip file expands to more than `KAP_MAX_EXPANSION_RATIO` times its compressed size (files expanding to under 16 MiB are exempt).",
    "line_too_long": "A line (one record) is longer than `KAP_MAX_LINE_BYTES`.",
    "nesting_too_deep": "A JSON line nests objects/arrays deeper than `KAP_MAX_JSON_DEPTH` levels.",
}


def render_markdown() -> str:
    lines = ["# Quarantine and rejection reason codes", "",
             "Generated from `ingest/reasons.py` by `kap docs`; do not edit by hand.", "",
             "## Record-level (`raw.quarantine.reason_code`)", "",
             "| reason code | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in RECORD_REASONS.items()]
    lines += ["", "## File-level (`raw.ingest_files.reject_reason`, status `rejected`)", "",
              "| reason code | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in FILE_REASONS.items()]
    lines += ["", "A rejected file's lines are not counted as records; `unstable_file` is not recorded at",
              "all, so the file is tried again on the next run. Every other rejection is recorded with",
              "the file's sha256, so the same bytes are not read again; a changed file is read again.",
              "The resource limits (`file_too_large` .. `nesting_too_deep`) are settings of `kap`",
              "(README, Settings) and arguments of the `ingest` library (`ingest.limits.Limits`)."]
    return "\n".join(lines) + "\n"
