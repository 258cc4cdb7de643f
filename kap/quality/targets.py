"""What a check can look at: landing views scoped to one ingest run, and the dbt marts.

A landing view is a SQL query over the restricted raw tables, narrowed to the files one run
ingested (`raw.events.file_id` -> `raw.ingest_files.run_id`). Payload fields are pulled out of
the event JSON with TRY_CAST, so a malformed value shows up as NULL (and fails a completeness
check) instead of crashing the run. A mart target is a table in the warehouse's `marts` schema.

Placeholders in SQL: `:run_id` (this run) and `:now` ("now" for future-date checks: `as_of`, else
the latest ingest time known to the warehouse). Both are substituted as literals, never the
wall clock, so a check gives the same answer when it is run again.
"""
from __future__ import annotations

from dataclasses import dataclass

# The contract's published tables (DESIGN.md section 4), in the warehouse's `marts` schema.
MART_TABLES: tuple[str, ...] = (
    "care_pathways", "pathway_transitions", "dosing_sessions", "therapy_sessions", "assessments",
    "patient_outcomes", "adherence_patient", "adherence_weekly", "dosing_safety", "clinic_daily",
    "integration_outcomes", "care_team", "care_continuity", "staff_weekly", "care_team_outcomes",
)

# Preferred key columns per mart for failing-row samples (first one present wins; else the
# table's first column).
MART_KEYS: dict[str, tuple[str, ...]] = {
    "care_pathways": ("episode_key", "episode_id", "pathway_key"),
    "pathway_transitions": ("transition_key", "transition_id", "episode_key"),
    "dosing_sessions": ("dosing_session_key", "dosing_key", "dosing_id", "session_key"),
    "therapy_sessions": ("therapy_session_key", "session_key", "encounter_id", "note_id"),
    "assessments": ("assessment_key", "assessment_id", "observation_id"),
    "patient_outcomes": ("outcome_key", "episode_key", "patient_key"),
    "adherence_patient": ("patient_key", "episode_key"),
    "adherence_weekly": ("adherence_week_key", "week_start", "week_start_date"),
    "dosing_safety": ("dosing_session_key", "dosing_key", "dosing_id"),
    "clinic_daily": ("clinic_daily_key", "clinic_id"),
    "integration_outcomes": ("cell_key",),
    "care_team": ("care_team_key",),
    "care_continuity": ("episode_key",),
    "staff_weekly": ("staff_week_key",),
    "care_team_outcomes": ("cell_key",),
}

_RUN_EVENTS = """
    FROM raw.events e
    JOIN raw.ingest_files f ON f.file_id = e.file_id
    WHERE f.run_id = :run_id
"""


def _payload_view(event_filter: str, fields: dict[str, str]) -> str:
    cols = ",\n        ".join(
        f"TRY_CAST(e.payload->>'{name}' AS {sql_type}) AS {name}" if sql_type != "VARCHAR"
        else f"e.payload->>'{name}' AS {name}"
        for name, sql_type in fields.items()
    )
    return f"""
    SELECT e.event_id, e.event_type, e.patient_key, e.occurred_at, e.recorded_at, e.ingested_at,
        e.file_id, f.path AS file_path,
        {cols}
    {_RUN_EVENTS} AND {event_filter}
    """


_TS, _NUM, _STR, _BOOL = "TIMESTAMP", "DOUBLE", "VARCHAR", "BOOLEAN"

_DOSE_FIELDS = {
    "dosing_id": _STR, "clinic_id": _STR, "route": _STR, "drug": _STR, "dose_mg": _NUM,
    "dose_mg_per_kg": _NUM, "weight_kg": _NUM, "start_at": _TS, "end_at": _TS,
    "monitoring_end_at": _TS,
    "bp_pre_systolic": _NUM, "bp_pre_diastolic": _NUM, "bp_40min_systolic": _NUM,
    "bp_40min_diastolic": _NUM, "bp_discharge_systolic": _NUM, "bp_discharge_diastolic": _NUM,
    "heart_rate_pre": _NUM, "spo2_min": _NUM, "cadss_total": _NUM, "moaas_min": _NUM,
    "is_booster": _BOOL, "clinician_id": _STR,
}


@dataclass(frozen=True)
class LandingView:
    name: str
    sql: str
    key: str            # column identifying a row in failing-key samples
    location: str       # where the failing rows live, for people reading a failure
    payload_fields: tuple[str, ...] = ()   # payload fields pulled out (used by tests to build data)
    event_types: tuple[str, ...] = ()
    # A view of the whole log that a night may read in part (night_relation_sql): the SQL has a
    # `{records}` hook after `FROM raw.events e`, empty when the whole log is read.
    nightly: bool = False


def _events_view(name: str, event_types: tuple[str, ...], fields: dict[str, str], key: str = "event_id",
                 like: str | None = None) -> LandingView:
    if like:
        event_filter = f"e.event_type LIKE '{like}'"
    else:
        event_filter = "e.event_type IN (" + ", ".join(f"'{t}'" for t in event_types) + ")"
    return LandingView(name, _payload_view(event_filter, fields), key,
                       "raw.events (event_id) of this run's files", tuple(fields), event_types)


LANDING_VIEWS: dict[str, LandingView] = {v.name: v for v in (
    LandingView(
        "run_files",
        "SELECT * FROM raw.ingest_files WHERE run_id = :run_id",
        "path", "raw.ingest_files (path) where run_id = this run"),
    LandingView(
        "run_quarantine_share",
        """
        SELECT f.file_id, f.path, q.reason_code, count(*) AS quarantined, f.records_read,
               100.0 * count(*) / greatest(f.records_read, 1) AS pct_of_file,
               f.path || ' [' || q.reason_code || ']' AS file_reason
        FROM raw.quarantine q JOIN raw.ingest_files f ON f.file_id = q.file_id
        WHERE f.run_id = :run_id
        GROUP BY f.file_id, f.path, q.reason_code, f.records_read
        """,
        "file_reason", "raw.quarantine (file, reason_code) of this run's files"),
    LandingView(
        "run_volume",
        """
        WITH per_run AS (
            SELECT run_id, count(*) AS files, sum(events_added) AS events_added,
                   sum(records_read) AS records_read, max(ingested_at) AS ingested_at
            FROM raw.ingest_files WHERE run_id IS NOT NULL GROUP BY run_id
        ),
        this_run AS (
            SELECT :run_id AS run_id,
                   coalesce((SELECT files FROM per_run WHERE run_id = :run_id), 0) AS files,
                   coalesce((SELECT events_added FROM per_run WHERE run_id = :run_id), 0) AS events_added,
                   (SELECT ingested_at FROM per_run WHERE run_id = :run_id) AS ingested_at
        ),
        earlier AS (
            SELECT p.* FROM per_run p, this_run t
            WHERE p.run_id <> :run_id AND p.events_added > 0
              AND (t.ingested_at IS NULL OR p.ingested_at < t.ingested_at)
            ORDER BY p.ingested_at DESC LIMIT 7
        )
        SELECT t.*, (SELECT median(events_added) FROM earlier) AS baseline_events,
               (SELECT count(*) FROM earlier) AS baseline_runs
        FROM this_run t
        """,
        "run_id", "raw.ingest_files grouped by run_id"),
    LandingView(
        "run_events",
        f"""
        SELECT e.event_id, e.event_type, e.patient_key, e.occurred_at, e.recorded_at, e.ingested_at,
               e.source, e.file_id, e.source_record_id, CAST(e.payload AS VARCHAR) AS payload_text,
               f.path AS file_path
        {_RUN_EVENTS}
        """,
        "event_id", "raw.events (event_id) of this run's files"),
    _events_view("run_assessments", ("assessment_scored",),
                 {"observation_id": _STR, "instrument": _STR, "code": _STR, "score": _NUM, "status": _STR}),
    _events_view("run_vitals", ("vital_signs_recorded",),
                 {"observation_id": _STR, "measure": _STR, "systolic": _NUM, "diastolic": _NUM,
                  "value": _NUM, "unit": _STR, "status": _STR}),
    _events_view("run_medications", ("medication_administered",),
                 {"administration_id": _STR, "drug": _STR, "route": _STR, "dose_mg": _NUM,
                  "status": _STR, "start_at": _TS, "end_at": _TS}),
    _events_view("run_doses", ("dose_administered",), _DOSE_FIELDS),
    _events_view("run_sessions", (), {"encounter_id": _STR, "session_type": _STR, "status": _STR,
                                      "encounter_class": _STR, "start_at": _TS, "end_at": _TS,
                                      "duration_min": _NUM}, like="encounter_%"),
    _events_view("run_notes", ("therapy_note_documented",),
                 {"note_id": _STR, "session_type": _STR, "modality": _STR, "start_at": _TS,
                  "end_at": _TS, "duration_min": _NUM, "status": _STR}),
    LandingView(
        "run_quarantine",
        """
        SELECT q.file_id, f.path, q.line_number, q.reason_code, q.detail,
               f.path || ':' || q.line_number AS file_line
        FROM raw.quarantine q JOIN raw.ingest_files f ON f.file_id = q.file_id
        WHERE f.run_id = :run_id
        """,
        "file_line", "raw.quarantine (file, line_number) of this run's files"),
    LandingView(
        "run_manifest_files",
        """
        SELECT m.path AS manifest_path, f.kind, f.resource_type, f.path, f.listed_count, f.found_lines,
               f.status,
               coalesce(f.path, f.url, '?') || ' [' || f.status
                   || CASE WHEN f.kind = 'error' THEN ': ' || coalesce(f.found_lines, 0) || ' OperationOutcome records'
                           WHEN f.status = 'count_mismatch'
                               THEN ': listed ' || f.listed_count || ', found ' || f.found_lines
                           ELSE '' END || ']' AS listed_file
        FROM raw.export_manifest_files f JOIN raw.export_manifests m USING (manifest_id)
        WHERE f.run_id = :run_id
        """,
        "listed_file", "raw.export_manifest_files (manifest_id, path) recorded by this run"),
    LandingView(
        "run_manifests",
        """
        SELECT path, transaction_time, outputs_listed, errors_listed, error_records, problem,
               path || coalesce(' [' || problem || ']', '') AS manifest
        FROM raw.export_manifests WHERE run_id = :run_id
        """,
        "manifest", "raw.export_manifests (path) recorded by this run"),
    # One resource in two files of this run's drops, each version without a knowledge time of its
    # own (no meta.lastUpdated: it took its drop's transactionTime or its file's ingest time): the
    # later file's version won (ingest.loader.file_stamp). Keyed by the files, never by record ids.
    LandingView(
        "run_versions_across_files",
        """
        WITH files AS (
            SELECT file_id, path, ingested_at, regexp_replace(path, '/[^/]*$', '') AS drop_folder
            FROM raw.ingest_files WHERE run_id = :run_id AND source = 'ehr' AND status = 'ingested'
        ), exports AS (
            SELECT drop_folder, max(transaction_time) AS transaction_time
            FROM raw.export_manifests WHERE transaction_time IS NOT NULL GROUP BY drop_folder
        ), without_meta AS (
            SELECT e.source_record_id, f.path, f.ingested_at
            FROM raw.events e JOIN files f USING (file_id) LEFT JOIN exports x USING (drop_folder)
            WHERE e.recorded_at = f.ingested_at OR e.recorded_at = x.transaction_time
        )
        SELECT split_part(source_record_id, '/', 1) AS resource_type, count(*) AS versions,
               count(DISTINCT path) AS files,
               arg_max(path, ingested_at) || ' over ' || arg_min(path, ingested_at)
                   || ' [' || split_part(source_record_id, '/', 1) || ']' AS later_file_won
        FROM without_meta GROUP BY source_record_id HAVING count(DISTINCT path) > 1
        """,
        "later_file_won", "raw.events of this run's EHR files: one resource, two versions without meta"),
    # Parked records this run found resolvable but rejected (a late-arriving record that happened
    # before its patient's birth year): what ingest quarantines as before_birth.
    LandingView(
        "run_parked_rejected",
        """
        SELECT p.reason_code, p.status, p.closed_detail,
               coalesce(f.path, p.file_id) || ':' || p.line_number || ' ['
                   || split_part(p.closed_detail, ':', 1) || ']' AS closed_record
        FROM restricted.parked_records p LEFT JOIN raw.ingest_files f ON f.file_id = p.file_id
        WHERE p.released_by_run = :run_id AND p.status = 'rejected'
        """,
        "closed_record", "restricted.parked_records (file_id, line_number) rejected by this run"),
    # The log's current state, not this run's files: a condition that entered the log once keeps
    # failing on every run until the record is corrected or retracted (RETRACT_HINT).
    LandingView(
        "log_current_events",
        """
        WITH ranked AS (
            SELECT e.*, row_number() OVER (PARTITION BY e.source, e.source_record_id
                                           ORDER BY e.recorded_at DESC, e.ingested_at DESC, e.event_id DESC) AS rn
            FROM raw.events e{records}
        )
        SELECT r.event_id, r.event_type, r.patient_key, r.occurred_at, r.recorded_at, r.ingested_at,
               r.source, r.source_record_id, f.path AS file_path,
               r.source || ' ' || r.source_record_id || ' (event ' || left(r.event_id, 12) || ', file '
                   || coalesce(f.path, r.file_id) || ')' AS log_record
        FROM ranked r LEFT JOIN raw.ingest_files f ON f.file_id = r.file_id
        WHERE r.rn = 1 AND r.event_type <> 'record_retracted'
        """,
        "log_record", "raw.events: the latest version of each record (source, source_record_id)", nightly=True),
    LandingView(
        "log_parked",
        f"""
        SELECT p.reason_code, p.source, p.parked_at, p.event_type,
               date_diff('day', p.parked_at, (SELECT max(run_started_at) FROM raw.knowledge_cutoffs)) AS age_days,
               coalesce(f.path, p.file_id) || ':' || p.line_number || ' [' || p.reason_code || ']' AS parked_record
        FROM restricted.parked_records p LEFT JOIN raw.ingest_files f ON f.file_id = p.file_id
        WHERE p.status = 'parked'
        """,
        "parked_record", "restricted.parked_records (file_id, line_number) with status parked"),
    # The lake against the log, one row per lake table: kap.lake.stage_check fills the temp table
    # before the landing checks run (it reads the Parquet parts; a query here cannot name them).
    LandingView(
        "log_lake",
        "SELECT lake_table, log_rows, lake_rows, log_checksum, lake_checksum, lake_root FROM kap_lake_reconciliation",
        "lake_table", "the lake (KAP_LAKE) against raw.events, raw.quarantine, raw.ingest_files, raw.knowledge_cutoffs"),
)}

# How to clear a critical condition that is in the log (shown with failures of log_* targets).
RETRACT_HINT = (
    "the event log is append-only: send the record again in the next drop, either corrected (a later "
    "version: FHIR meta.versionId + a later meta.lastUpdated; dosing amended_at; notes amended_at) or "
    "retracted (FHIR status or verificationStatus entered-in-error; dosing is_void=true; notes status "
    "entered-in-error), with a knowledge time after the failing version's. The check reads the log's "
    "current state and passes once the record's latest version is valid or retracted.")


def mart_table(target: str) -> str | None:
    """`marts.<name>` for a mart target, else None."""
    if target.startswith("marts."):
        return target.split(".", 1)[1]
    return None


def _landing_view(target: str) -> LandingView:
    return LANDING_VIEWS[target.split(".", 1)[1] if target.startswith("landing.") else target]


def relation_sql(target: str) -> str:
    """A SQL relation (sub-query or table name) for a catalogue target."""
    table = mart_table(target)
    if table is not None:
        return f"marts.{table}"
    view = _landing_view(target)
    return f"({view.sql.replace('{records}', '')})"


# A night's part of a whole-log view: the records this run's files sent, and every record with a
# version for which `failing` (SQL on raw.events) holds. With `failing` true for every version that
# fails one of the view's checks, a failing current version is always read: the night finds every
# failure the whole log holds, tonight's and the ones earlier nights left, at the cost of what
# changed (README: "Nightly and full checks").
_NIGHT_RECORDS = """ SEMI JOIN (
                SELECT source, source_record_id FROM raw.events
                WHERE file_id IN (SELECT file_id FROM raw.ingest_files WHERE run_id = :run_id) OR ({failing})
            ) AS night ON night.source = e.source AND night.source_record_id = e.source_record_id"""


def night_relation_sql(target: str, failing: str) -> str | None:
    """The night's part of a whole-log landing view (None when the view is read whole every night)."""
    if mart_table(target) is not None:
        return None
    view = _landing_view(target)
    if not view.nightly:
        return None
    return f"({view.sql.replace('{records}', _NIGHT_RECORDS.replace('{failing}', failing))})"


def location(target: str) -> str:
    table = mart_table(target)
    if table is not None:
        return f"warehouse marts.{table}"
    return _landing_view(target).location


def sql_literal(value: object) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def bind(sql: str, run_id: str, now: str | None) -> str:
    """Substitute :run_id and :now (as a TIMESTAMP literal, or NULL) into catalogue SQL."""
    now_sql = f"CAST({sql_literal(now)} AS TIMESTAMP)" if now else "CAST(NULL AS TIMESTAMP)"
    return sql.replace(":run_id", sql_literal(run_id)).replace(":now", now_sql)
