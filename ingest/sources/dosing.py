"""Dosing log CSV (`dosing/*.csv`) -> candidate records, in one SQL statement per file.

How the CSV is read, and why: the file's lines come from `read_text` + `string_split` like the JSON
sources (exact file line numbers, BOM/CRLF handling, blank lines skipped), the header is parsed
once in Python (`csv` module) to map column names to positions, and each row is split in SQL:
`string_split(line, ',')` for the common unquoted row, and an RFC 4180 field regex
(`"(?:[^"]|"")*"|[^,]*`, quotes stripped, `""` unescaped) only for rows that contain a quote.
A row whose field count differs from the header's is `unparseable`. A quoted field spanning
several lines is not supported (the dosing log has no free text); its pieces are quarantined.
DuckDB's `read_csv` was not used because it cannot report the file line number of each row, which
quarantine and the reconciliation need, and it would silently skip or re-align malformed rows.
All values are read as text and typed with TRY_CAST, so a bad value is a reason code, not an error.
"""
from __future__ import annotations

import csv

from ingest.sources import Context, first_failure, select_columns, sql_str

COLUMNS: dict[str, str] = {   # column -> type
    "dosing_id": "string", "clinic_id": "string", "patient_mrn": "string", "route": "string",
    "drug": "string", "dose_mg": "decimal", "dose_mg_per_kg": "decimal", "weight_kg": "decimal",
    "start_at": "timestamp", "end_at": "timestamp", "monitoring_end_at": "timestamp",
    "bp_pre_systolic": "integer", "bp_pre_diastolic": "integer",
    "bp_40min_systolic": "integer", "bp_40min_diastolic": "integer",
    "bp_discharge_systolic": "integer", "bp_discharge_diastolic": "integer",
    "heart_rate_pre": "integer", "spo2_min": "integer", "cadss_total": "integer", "moaas_min": "integer",
    "is_booster": "boolean", "clinician_id": "string", "rems_form_submitted_on": "date",
    "recorded_at": "timestamp", "amended_at": "timestamp", "is_void": "boolean",
    "setting": "string",   # optional: office | home | telehealth_supervised (older logs lack it)
}
REQUIRED = ("dosing_id", "clinic_id", "patient_mrn", "route", "drug", "dose_mg", "start_at",
            "clinician_id", "recorded_at")
VOID_REQUIRED = ("dosing_id", "patient_mrn", "recorded_at")
ROUTES = ("IV", "IM", "IN", "SL", "PO")
DRUGS = ("ketamine", "esketamine")
SETTINGS = ("office", "home", "telehealth_supervised")
DOSE_RANGE = {"IV": (1, 200), "IM": (1, 200), "IN": (28, 84), "SL": (10, 500), "PO": (10, 500)}
RANGES = {
    "dose_mg_per_kg": (0.05, 7), "weight_kg": (25, 350),
    "bp_pre_systolic": (50, 300), "bp_40min_systolic": (50, 300), "bp_discharge_systolic": (50, 300),
    "bp_pre_diastolic": (20, 200), "bp_40min_diastolic": (20, 200), "bp_discharge_diastolic": (20, 200),
    "heart_rate_pre": (20, 250), "spo2_min": (50, 100), "cadss_total": (0, 92), "moaas_min": (0, 5),
}
TRUE = ("true", "1", "yes", "y", "t")
FALSE = ("false", "0", "no", "n", "f")


SPLIT = """CASE WHEN contains(line, '"') THEN
            list_transform(regexp_extract_all(',' || line, ',("(?:[^"]|"")*"|[^,]*)', 1),
                lambda f: CASE WHEN length(f) >= 2 AND starts_with(f, '"') AND ends_with(f, '"')
                          THEN replace(f[2:-2], '""', '"') ELSE f END)
        ELSE string_split(line, ',') END"""


def parse_header(line: str) -> list[str]:
    return [h.strip().lstrip("\ufeff").lower() for h in next(csv.reader([line]))]


def missing_columns(header: list[str]) -> list[str]:
    return [c for c in REQUIRED if c not in header]


def _typed(col: str, typ: str) -> str:
    raw = f"v_{col}"
    return {
        "string": raw,
        "decimal": f"TRY_CAST({raw} AS DOUBLE)",
        "integer": f"TRY_CAST(TRY_CAST({raw} AS DOUBLE) AS BIGINT)",
        "timestamp": f"kap_ts({raw})",
        "date": f"TRY_CAST({raw} AS DATE)",
        "boolean": f"CASE WHEN lower({raw}) IN {TRUE} THEN true WHEN lower({raw}) IN {FALSE} THEN false END",
    }[typ]


def records_sql(ctx: Context) -> str:
    header = ctx.header or []
    n = len(header)
    idx = {c: header.index(c) + 1 for c in COLUMNS if c in header}
    mrn_i = idx.get("patient_mrn", 0)

    raw_cols = ",\n        ".join(
        f"nullif(trim(fields[{idx[c]}]), '') AS v_{c}" if c in idx else f"NULL::VARCHAR AS v_{c}"
        for c in COLUMNS)
    typed_cols = ",\n        ".join(f"{_typed(c, t)} AS t_{c}" for c, t in COLUMNS.items())

    checks: list[tuple[str, str, str]] = [
        (f"len(fields) <> {n}", "unparseable", f"'expected {n} fields, found ' || len(fields)"),
        ("v_is_void IS NOT NULL AND t_is_void IS NULL", "wrong_type", "'is_void'"),
    ]
    checks += [(f"is_void AND v_{c} IS NULL", "missing_required_field", sql_str(c)) for c in VOID_REQUIRED]
    checks += [(f"is_void AND v_{c} IS NOT NULL AND t_{c} IS NULL", "wrong_type", sql_str(c))
               for c in ("recorded_at", "amended_at", "start_at")]
    checks += [("is_void", "__ok__", "NULL")]
    checks += [(f"v_{c} IS NULL", "missing_required_field", sql_str(c)) for c in REQUIRED]
    checks += [(f"v_{c} IS NOT NULL AND t_{c} IS NULL", "wrong_type", sql_str(c))
               for c, t in COLUMNS.items() if t != "string"]
    checks += [
        (f"upper(v_route) NOT IN {ROUTES}", "invalid_code", "'route'"),
        (f"lower(v_drug) NOT IN {DRUGS}", "invalid_code", "'drug'"),
        (f"v_setting IS NOT NULL AND lower(v_setting) NOT IN {SETTINGS}", "invalid_code", "'setting'"),
        ("CASE route " + " ".join(f"WHEN '{r}' THEN t_dose_mg NOT BETWEEN {lo} AND {hi}"
                                  for r, (lo, hi) in DOSE_RANGE.items()) + " END",
         "out_of_range", "'dose_mg ' || t_dose_mg || ' for route ' || route"),
    ]
    checks += [(f"t_{c} NOT BETWEEN {lo} AND {hi}", "out_of_range", f"'{c} ' || t_{c}")
               for c, (lo, hi) in RANGES.items()]
    checks += [
        ("t_end_at < t_start_at", "end_before_start", "'end_at < start_at'"),
        ("t_monitoring_end_at < t_start_at", "end_before_start", "'monitoring_end_at < start_at'"),
    ]
    check = first_failure(checks)

    iso = "kap_iso"
    payload_fields = {
        "dosing_id": "v_dosing_id", "clinic_id": "v_clinic_id", "route": "route", "drug": "lower(v_drug)",
        "dose_mg": "t_dose_mg", "dose_mg_per_kg": "t_dose_mg_per_kg", "weight_kg": "t_weight_kg",
        "start_at": f"{iso}(t_start_at)", "end_at": f"{iso}(t_end_at)",
        "monitoring_end_at": f"{iso}(t_monitoring_end_at)",
        **{c: f"t_{c}" for c in ("bp_pre_systolic", "bp_pre_diastolic", "bp_40min_systolic",
                                 "bp_40min_diastolic", "bp_discharge_systolic", "bp_discharge_diastolic",
                                 "heart_rate_pre", "spo2_min", "cadss_total", "moaas_min")},
        "is_booster": "coalesce(t_is_booster, false)", "clinician_id": "v_clinician_id",
        "rems_form_submitted_on": "strftime(t_rems_form_submitted_on, '%Y-%m-%d')",
        "is_amended": "(t_amended_at IS NOT NULL)",
        "setting": "lower(v_setting)",
    }
    payload = ("CASE WHEN is_void THEN json_object('retracted_resource', 'dosing', 'reason', 'void') "
               "ELSE json_object(" + ", ".join(f"'{k}', {v}" for k, v in payload_fields.items()) + ") END")

    cols = select_columns({
        "line_number": "line_number",
        "ignored": "false",
        "reason": "CASE WHEN NOT starts_with(chk.r, '__') THEN chk.r END",
        "detail": "CASE WHEN NOT starts_with(chk.r, '__') THEN chk.d END",
        "event_type": "CASE WHEN is_void THEN 'record_retracted' ELSE 'dose_administered' END",
        "source_record_id": "v_dosing_id",
        "version_key": "coalesce(kap_iso(coalesce(t_amended_at, t_recorded_at)), '') || '|void=' || is_void",
        "ref_kind": "'mrn'",
        "ref_value": "v_patient_mrn",
        "needs_patient": "true",
        "occurred_at": "coalesce(t_start_at, t_amended_at, t_recorded_at, $ingested_at)",
        "recorded_at": "coalesce(t_amended_at, t_recorded_at, $ingested_at)",
        "check_time": "(t_start_at IS NOT NULL AND NOT is_void)",
        "payload": payload,
        "local_clock": "NOT is_void AND (kap_naive_ts(v_start_at) OR kap_naive_ts(v_end_at) OR kap_naive_ts(v_monitoring_end_at))",
    })
    return f"""
WITH split AS (
    SELECT line_number, line, {SPLIT} AS fields
    FROM _kap_lines
), vals AS (
    SELECT line_number, line, fields,
        {raw_cols}
    FROM split
), typed AS (
    SELECT *,
        {typed_cols}
    FROM vals
), flags AS (
    SELECT *, coalesce(t_is_void, false) AS is_void, upper(v_route) AS route FROM typed
), checked AS (
    SELECT *, {check} AS chk FROM flags
)
SELECT
    {cols}
FROM checked
"""


def quarantine_sql(ctx: Context) -> str:
    """The row again with the MRN field masked, fields re-quoted where needed."""
    header = ctx.header or []
    mrn_i = header.index("patient_mrn") + 1 if "patient_mrn" in header else 0
    return (f"array_to_string(list_transform({SPLIT}, lambda f, i: CASE WHEN i = {mrn_i} THEN '[redacted]' "
            "WHEN contains(f, ',') OR contains(f, '\"') THEN '\"' || replace(f, '\"', '\"\"') || '\"' "
            "ELSE f END), ',')")
