"""The restricted warehouse: its schema, and the single-writer rule DuckDB imposes.

DuckDB allows one read-write process per file, so every writer (ingest, dbt, checks, publish)
takes `writer_lock` first: a second run waits for the first instead of failing or corrupting.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from ingest.config import Settings

log = logging.getLogger(__name__)

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS restricted;
CREATE SCHEMA IF NOT EXISTS dq;

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
"""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA_SQL)


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse writer lock."""


@contextlib.contextmanager
def writer_lock(settings: Settings, wait_seconds: float | None = None) -> Iterator[None]:
    """Hold the single-writer lock for the warehouse (re-entrant within one process).

    Waits up to `wait_seconds` for another holder, then raises WarehouseBusy; the default is
    $KAP_LOCK_WAIT_SECONDS, else 3600 s (0 = refuse at once when busy).
    """
    if wait_seconds is None:
        wait_seconds = float(os.environ.get("KAP_LOCK_WAIT_SECONDS", "3600"))
    settings.home.mkdir(parents=True, exist_ok=True)
    key = str(settings.lock_file)
    depth = _held.get(key, 0)
    if depth:
        _held[key] = depth + 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WarehouseBusy(
                        f"another kap process is writing {settings.warehouse}; "
                        f"wait for it to finish (lock file {settings.lock_file})"
                    ) from None
                if not announced:
                    log.warning("warehouse is busy with another run; waiting for it to finish")
                    announced = True
                time.sleep(0.2)
        _held[key] = 1
        try:
            yield
        finally:
            _held.pop(key, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_held: dict[str, int] = {}


def connect(settings: Settings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse. Writers must hold `writer_lock`; the schema is created on first use."""
    settings.home.mkdir(parents=True, exist_ok=True)
    if read_only:
        return duckdb.connect(str(settings.warehouse), read_only=True)
    con = duckdb.connect(str(settings.warehouse))
    ensure_schema(con)
    return con


@contextlib.contextmanager
def writer(settings: Settings, wait_seconds: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Lock, connect, and close again: the usual way to write the warehouse."""
    with writer_lock(settings, wait_seconds):
        con = connect(settings)
        try:
            yield con
        finally:
            con.close()


def path_for_sql(path: Path) -> str:
    """Quote a filesystem path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"
