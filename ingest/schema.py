"""The event log's tables: raw.ingest_files, raw.events, raw.quarantine, restricted.patient_keys,
restricted.secrets and the view restricted.source_record_keys.

`ensure_event_log` creates them when missing (idempotent). The loader writes nothing else.
"""
from __future__ import annotations

import secrets

import duckdb

#: restricted.secrets row keying the surrogates of source record ids (dbt macro source_key).
SOURCE_ID_SECRET = "source_id_key"

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS restricted;

-- One row per landing file ever seen. A file whose sha256 is here with status 'ingested' or
-- 'rejected' is never read again.
CREATE TABLE IF NOT EXISTS raw.ingest_files (
    file_id             VARCHAR PRIMARY KEY,   -- sha256 of the file's bytes
    path                VARCHAR NOT NULL,      -- path relative to the landing folder
    sha256              VARCHAR NOT NULL,
    source              VARCHAR NOT NULL,      -- ehr | dosing | notes
    status              VARCHAR NOT NULL,      -- ingested | rejected
    reject_reason       VARCHAR,               -- file-level reason code when rejected
    size_bytes          BIGINT,
    records_read        BIGINT NOT NULL,
    records_accepted    BIGINT NOT NULL,
    records_quarantined BIGINT NOT NULL,
    records_duplicate   BIGINT NOT NULL,
    records_ignored     BIGINT NOT NULL,
    events_added        BIGINT NOT NULL,
    ingested_at         TIMESTAMP NOT NULL,
    run_id              VARCHAR
);

-- The event log: append-only, bitemporal. occurred_at = valid time, recorded_at = knowledge time.
-- event_id is unique (the loader's anti-join against the log, and a data-quality check), but
-- carries no PRIMARY KEY: its ART index made every insert slower and grew with the log.
CREATE TABLE IF NOT EXISTS raw.events (
    event_id          VARCHAR NOT NULL,
    event_type        VARCHAR NOT NULL,
    patient_key       VARCHAR,
    occurred_at       TIMESTAMP,
    recorded_at       TIMESTAMP NOT NULL,
    ingested_at       TIMESTAMP NOT NULL,
    source            VARCHAR NOT NULL,
    file_id           VARCHAR NOT NULL,
    source_record_id  VARCHAR NOT NULL,
    payload           JSON NOT NULL
);

-- Every rejected record, with the reason. Note text is removed before it lands here.
CREATE TABLE IF NOT EXISTS raw.quarantine (
    file_id      VARCHAR NOT NULL,
    line_number  BIGINT NOT NULL,
    reason_code  VARCHAR NOT NULL,
    detail       VARCHAR,
    raw_record   VARCHAR,
    quarantined_at TIMESTAMP NOT NULL
);

-- Source identifiers -> random surrogate key. Never leaves the restricted zone.
CREATE TABLE IF NOT EXISTS restricted.patient_keys (
    patient_key VARCHAR NOT NULL,
    id_system   VARCHAR NOT NULL,   -- 'fhir' (Patient.id) or 'mrn'
    id_value    VARCHAR NOT NULL,
    file_id     VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (id_system, id_value)
);

-- Secrets of the restricted zone, made once with random values (ensure_event_log). Losing a
-- secret changes every key derived from it.
CREATE TABLE IF NOT EXISTS restricted.secrets (
    name       VARCHAR PRIMARY KEY,
    value      VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- "Now" for the as-of rules: the knowledge cutoff of the data received, one row per ingest run
-- (ingest/knowledge.py). dbt's stg_raw__knowledge_time reads the latest row.
CREATE TABLE IF NOT EXISTS raw.knowledge_cutoffs (
    run_id          VARCHAR NOT NULL,
    cutoff_at       TIMESTAMP,              -- NULL while nothing has been received
    basis           VARCHAR,                -- manifest_transaction_time | latest_ingest_time | previous_cutoff
    manifest_path   VARCHAR,                -- the manifest whose transactionTime was taken
    basis_run_id    VARCHAR,                -- the run whose files set the cutoff
    run_started_at  TIMESTAMP NOT NULL,     -- the cutoff is never later than this
    recorded_at     TIMESTAMP NOT NULL
);

-- Bulk Data $export manifests (`manifest.json` beside an EHR drop's NDJSON files), one row each
-- (ingest/manifest.py); never ingested as FHIR resources.
CREATE TABLE IF NOT EXISTS raw.export_manifests (
    manifest_id       VARCHAR NOT NULL,     -- sha256 of the manifest's bytes
    path              VARCHAR NOT NULL,     -- relative to the landing folder
    drop_folder       VARCHAR NOT NULL,
    transaction_time  TIMESTAMP,            -- manifest transactionTime (UTC); NULL when unreadable
    request           VARCHAR,
    outputs_listed    BIGINT NOT NULL,
    errors_listed     BIGINT NOT NULL,      -- error[] files (OperationOutcome NDJSON)
    error_records     BIGINT NOT NULL,      -- OperationOutcome lines in those files
    problem           VARCHAR,              -- why the manifest could not be used, if so
    run_id            VARCHAR,
    ingested_at       TIMESTAMP NOT NULL
);

-- One row per output[] / error[] entry of a manifest: listed count vs lines found in the drop.
CREATE TABLE IF NOT EXISTS raw.export_manifest_files (
    manifest_id     VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,       -- output | error
    resource_type   VARCHAR,
    url             VARCHAR,
    path            VARCHAR,                -- the file in the drop the url names (by file name)
    listed_count    BIGINT,
    found_lines     BIGINT,                 -- NULL when the file is missing
    status          VARCHAR NOT NULL,       -- ok | missing | count_mismatch | errors_reported
    run_id          VARCHAR,
    ingested_at     TIMESTAMP NOT NULL
);

-- Records held back because something they reference has not arrived yet (a patient, a clinic) or
-- because their patient identity conflicts (ingest/parking.py). They are also in raw.quarantine
-- with the same reason, counted there by their file; each ingest re-evaluates the open ones and
-- releases those that resolve, with their original knowledge time. Holds the reference's value
-- (an MRN or Patient.id), hence the restricted schema.
CREATE TABLE IF NOT EXISTS restricted.parked_records (
    file_id           VARCHAR NOT NULL,
    line_number       BIGINT NOT NULL,
    reason_code       VARCHAR NOT NULL,     -- unknown_patient | unknown_clinic | identity_conflict
    source            VARCHAR NOT NULL,
    event_id          VARCHAR NOT NULL,
    event_type        VARCHAR NOT NULL,
    ref_kind          VARCHAR,
    ref_value         VARCHAR,
    clinic_id         VARCHAR,
    occurred_at       TIMESTAMP,
    recorded_at       TIMESTAMP NOT NULL,   -- the original knowledge time, kept on release
    source_record_id  VARCHAR NOT NULL,
    payload           JSON NOT NULL,
    key_fhir_id       VARCHAR,              -- identity_conflict: the Patient's identifiers
    key_mrn           VARCHAR,
    parked_at         TIMESTAMP NOT NULL,
    parked_by_run     VARCHAR,
    status            VARCHAR NOT NULL,     -- parked | released | superseded | rejected
    released_at       TIMESTAMP,            -- when it was closed (released, superseded or rejected)
    released_by_run   VARCHAR,
    closed_detail     VARCHAR               -- why a record was superseded or rejected when it resolved
);
-- warehouses made before closed_detail existed
ALTER TABLE restricted.parked_records ADD COLUMN IF NOT EXISTS closed_detail VARCHAR;
"""

# Source record ids -> the surrogate keys the marts carry instead (dbt macro source_key: the same
# formula), to trace a published row back to its source. entity: the FHIR resource type, or
# 'dosing' / 'note'.
SOURCE_KEYS_VIEW = f"""
CREATE VIEW IF NOT EXISTS restricted.source_record_keys AS
WITH ids AS (
    SELECT DISTINCT source, source_record_id,
        CASE WHEN source = 'ehr' THEN split_part(source_record_id, '/', 1)
             WHEN source = 'dosing' THEN 'dosing' ELSE 'note' END AS entity,
        CASE WHEN source = 'ehr' THEN substr(source_record_id, strpos(source_record_id, '/') + 1)
             ELSE source_record_id END AS source_id
    FROM raw.events
)
SELECT ids.entity, ids.source_id, ids.source, ids.source_record_id,
       left(sha256(k.value || '|' || ids.entity || '|' || ids.source_id), 32) AS surrogate_id
FROM ids CROSS JOIN (SELECT value FROM restricted.secrets WHERE name = '{SOURCE_ID_SECRET}') AS k
"""


def ensure_event_log(con: duckdb.DuckDBPyConnection) -> None:
    """Create the event-log schemas and tables when they do not exist yet, and the secret that keys
    source record ids (256 random bits from the OS, made once)."""
    con.execute(SCHEMA_SQL)
    if con.execute("SELECT 1 FROM restricted.secrets WHERE name = ?", [SOURCE_ID_SECRET]).fetchone() is None:
        con.execute("INSERT INTO restricted.secrets VALUES (?, ?, now()::TIMESTAMP) ON CONFLICT DO NOTHING",
                    [SOURCE_ID_SECRET, secrets.token_hex(32)])
    con.execute(SOURCE_KEYS_VIEW)
