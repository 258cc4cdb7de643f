"""The restricted warehouse: its schema (the event log's, from ingest.schema, plus dq), and the
single-writer rule DuckDB imposes.

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

from ingest.schema import ensure_event_log
from kap.settings import Settings, limit_resources

log = logging.getLogger(__name__)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The event log's tables (ingest.schema) and the dq schema the quality gate writes."""
    ensure_event_log(con)
    con.execute("CREATE SCHEMA IF NOT EXISTS dq")


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
        return limit_resources(duckdb.connect(str(settings.warehouse), read_only=True))
    con = limit_resources(duckdb.connect(str(settings.warehouse)))
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
