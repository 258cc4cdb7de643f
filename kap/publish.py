"""Publish the marts to the BI zone: a new analytics.duckdb, swapped in atomically.

The new database is written beside the target as `<target>.tmp-<run_id>` through the warehouse's
own connection (ATTACH), then `os.replace`d onto the target: a reader sees the old file or the new
one, never a half-built one, and a reader holding the old file open keeps reading it. Only the
contract's mart tables and the data-quality results are copied - never raw.*, restricted.*,
staging or intermediate models. Every text value starting with a spreadsheet formula trigger
(= + - @ TAB CR) is published with a leading single quote (formula_safe_sql).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from pathlib import Path

from ingest import crashpoints
from kap.settings import Settings
from kap.quality.targets import MART_TABLES
from kap.warehouse import path_for_sql, writer

log = logging.getLogger(__name__)

# Column names that would carry a direct identifier (DOMAIN.md section 6): their presence in a
# mart is a privacy bug upstream, so publishing refuses instead of shipping them.
FORBIDDEN_COLUMNS = frozenset({
    "patient_mrn", "mrn", "ssn", "name", "first_name", "last_name", "given_name", "family_name",
    "patient_name", "phone", "telecom", "email", "address", "address_line", "street", "birth_date",
    "birthdate", "text", "note_text", "raw_record",
})


BI_STORAGE_VERSION = "v1.2.0"


class PublishRefused(RuntimeError):
    """A mart carries a column that must not reach the BI zone."""


def as_of_target(settings: Settings, as_of: str) -> Path:
    """Where a look into the past is published, so it never replaces today's file."""
    slug = re.sub(r"[^0-9A-Za-z]+", "", str(as_of).replace(" ", "T"))
    return settings.home / f"analytics_asof_{slug}.duckdb"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _dq_run_ids(con, run_id: str) -> list[tuple[str, str]]:
    """The validation run per stage whose results to publish: this run's, else the latest."""
    have = con.execute("SELECT count(*) FROM information_schema.tables "
                       "WHERE table_schema = 'dq' AND table_name = 'validation_runs'").fetchone()[0]
    if not have:
        return []
    rows = con.execute("""
        SELECT stage, arg_max(run_id, CASE WHEN run_id = ? THEN TIMESTAMP '9999-12-31' ELSE finished_at END)
        FROM dq.validation_runs GROUP BY stage ORDER BY stage
    """, [run_id]).fetchall()
    return [(stage, rid) for stage, rid in rows]


def publish(settings: Settings, run_id: str, as_of: str | None = None, target: Path | None = None) -> Path:
    """Copy marts + dq results into a fresh file and atomically replace the target with it."""
    if target is None:
        target = as_of_target(settings, as_of) if as_of else settings.analytics
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    safe_run = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    tmp = target.with_name(f"{target.name}.tmp-{safe_run}")

    alias = "kap_publish"
    with writer(settings) as con:
        # Under the writer lock no other publish is under way: any tmp file is a killed run's.
        for leftover in target.parent.glob(f"{target.name}.tmp-*"):
            leftover.unlink(missing_ok=True)
        existing = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'").fetchall()}
        tables = [t for t in MART_TABLES if t in existing]
        missing = [t for t in MART_TABLES if t not in existing]
        if missing:
            log.warning("publishing without marts not built yet: %s", ", ".join(missing))
        for table in tables:
            cols = {r[0].lower() for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' AND table_name = ?",
                [table]).fetchall()}
            bad = sorted(cols & FORBIDDEN_COLUMNS)
            if bad:
                raise PublishRefused(f"marts.{table} has identifier column(s) {bad}: not published")
        dq_runs = _dq_run_ids(con, run_id)
        published_at = _utcnow()
        # BI drivers and the DuckDB shell on PyPI are often DuckDB 1.x, which cannot open the 2.x
        # default storage format; v1.2.0 storage opens in both.
        con.execute(f"ATTACH {path_for_sql(tmp)} AS {alias} (STORAGE_VERSION '{BI_STORAGE_VERSION}')")
        try:
            counts: dict[str, int] = {}
            for table in tables:
                con.execute(f'CREATE TABLE {alias}.main."{table}" AS '
                            f'SELECT {_formula_safe_columns(con, "marts", table)} FROM marts."{table}"')
                counts[table] = con.execute(f'SELECT count(*) FROM {alias}.main."{table}"').fetchone()[0]
                crashpoints.reached("publish.mid_copy")
            dq_filter = " OR ".join(["(stage = ? AND run_id = ?)"] * len(dq_runs)) or "FALSE"
            dq_params = [v for pair in dq_runs for v in pair]
            if dq_runs:
                con.execute(f"CREATE TABLE {alias}.main.dq_results AS SELECT "
                            f"{_formula_safe_columns(con, 'dq', 'check_results')} FROM dq.check_results "
                            f"WHERE {dq_filter} ORDER BY stage, check_id", dq_params)
            else:
                con.execute(f"""CREATE TABLE {alias}.main.dq_results (
                    run_id VARCHAR, stage VARCHAR, check_id VARCHAR, target VARCHAR, "column" VARCHAR,
                    check_type VARCHAR, kahn_category VARCHAR, severity VARCHAR, status VARCHAR,
                    rows_checked BIGINT, rows_failed BIGINT, pct_failed DOUBLE, threshold_pct DOUBLE,
                    failing_keys_sample VARCHAR, note VARCHAR, location VARCHAR, detail VARCHAR)""")
            counts["dq_results"] = con.execute(f"SELECT count(*) FROM {alias}.main.dq_results").fetchone()[0]
            con.execute(f"""CREATE TABLE {alias}.main.publish_runs (
                run_id VARCHAR NOT NULL, as_of TIMESTAMP, published_at TIMESTAMP NOT NULL,
                table_name VARCHAR NOT NULL, row_count BIGINT NOT NULL, dq_runs VARCHAR)""")
            con.executemany(f"INSERT INTO {alias}.main.publish_runs VALUES (?, ?, ?, ?, ?, ?)",
                            [[run_id, as_of, published_at, name, n, json.dumps(dict(dq_runs))]
                             for name, n in counts.items()])
            con.execute(f"CHECKPOINT {alias}")
        except BaseException:
            con.execute(f"DETACH {alias}")
            tmp.unlink(missing_ok=True)
            raise
        con.execute(f"DETACH {alias}")
    os.chmod(tmp, settings.analytics_mode)       # the one group-readable file (KAP_ANALYTICS_MODE)
    _fsync(tmp)
    crashpoints.reached("publish.before_replace")
    os.replace(tmp, target)
    if target.parent == settings.home:
        os.chmod(settings.home, settings.home_mode)
    _fsync_dir(target.parent)
    log.info("published %d tables to %s (run %s)", len(tables), target, run_id)
    return target


# Spreadsheet formula injection: a cell starting with one of these is run as a formula when an
# analyst opens a CSV export of a BI table in a spreadsheet (`=HYPERLINK(...)`, `+cmd|...`,
# `@SUM(...)`, and TAB/CR, which some spreadsheets skip before such a character).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe_sql(expr: str) -> str:
    """SQL for `expr` (a VARCHAR) with a leading formula trigger escaped by a single quote, the
    spreadsheet convention for "this is text": '=1+1' -> \"'=1+1\". Other values are unchanged."""
    triggers = ", ".join("chr(%d)" % ord(c) for c in FORMULA_TRIGGERS)
    return f"CASE WHEN left({expr}, 1) IN ({triggers}) THEN chr(39) || {expr} ELSE {expr} END"


def _formula_safe_columns(con, schema: str, table: str) -> str:
    """The select list of a published table: every text column through formula_safe_sql."""
    cols = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                       [schema, table]).fetchall()
    out = []
    for name, dtype in cols:
        q = '"' + name.replace('"', '""') + '"'
        out.append(f"{formula_safe_sql(q)} AS {q}" if dtype == "VARCHAR" else q)
    return ", ".join(out)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
