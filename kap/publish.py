"""Publish the marts to the BI zone: a new analytics.duckdb, swapped in atomically.

The new database is written beside the target as `<target>.tmp-<run_id>` through the warehouse's
own connection (ATTACH), then `os.replace`d onto the target: a reader sees the old file or the new
one, never a half-built one, and a reader holding the old file open keeps reading it. Only the
contract's mart tables and the data-quality results are copied - never raw.*, restricted.*,
staging or intermediate models. Beside the network file, each clinic gets its own file,
analytics_clinic_<clinic_id>.duckdb, with only its rows of every table (by clinic_id, else by its
episodes; integration_outcomes recomputed for the clinic), written and renamed the same way. Every text value starting with a spreadsheet formula trigger
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
    # staff appear only by id and role: no staff name or identifier (NPI, licence)
    "npi", "identifiers", "staff_name", "practitioner_name", "staff_identifier", "licence", "license",
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


def clinic_target(target: Path, clinic_id: str) -> Path:
    """Where one clinic's file is published, beside the network file: analytics_clinic_<id>.duckdb
    (for an as-of target, analytics_asof_<time>_clinic_<id>.duckdb)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", clinic_id)
    return target.with_name(f"{target.stem}_clinic_{safe}.duckdb")


class _Catalog:
    """The columns of the marts and dq tables, read once per publish (a file per clinic asks for
    every table's columns again; 250 catalogue queries took about 1.4 s at 10k patients)."""

    def __init__(self, con) -> None:
        self._cols: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for schema, table, name, dtype in con.execute(
                "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema IN ('marts', 'dq') ORDER BY table_schema, table_name, ordinal_position").fetchall():
            self._cols.setdefault((schema, table), []).append((name, dtype))

    def columns(self, schema: str, table: str) -> list[tuple[str, str]]:
        """(name, data type) in column order; [] for a table that does not exist."""
        return self._cols.get((schema, table), [])


def _columns(cat: _Catalog, table: str) -> set[str]:
    return {name.lower() for name, _ in cat.columns("marts", table)}


def _clinic_ids(con, cat: _Catalog, tables: list[str]) -> list[str]:
    ids: set[str] = set()
    for table in tables:
        if "clinic_id" in _columns(cat, table):
            ids |= {r[0] for r in con.execute(
                f'SELECT DISTINCT clinic_id FROM marts."{table}" WHERE clinic_id IS NOT NULL').fetchall()}
    return sorted(ids)


# Marts whose rows mix clinics: a clinic's file gets a table recomputed for the clinic instead.
RECOMPUTED_PER_CLINIC = {"integration_outcomes": "integration_outcomes_clinic",
                         "care_team_outcomes": "care_team_outcomes_clinic"}


def _table_source(cat: _Catalog, table: str, clinic: str | None) -> tuple[str, list]:
    """(SELECT, parameters) of a published table: the whole mart, or one clinic's rows of it -
    by clinic_id, else by the clinic's episodes (care_pathways), else recomputed per clinic."""
    select = f"SELECT {_formula_safe_columns(cat, 'marts', table)}"
    if clinic is None:
        return f'{select} FROM marts."{table}"', []
    cols = _columns(cat, table)
    if table in RECOMPUTED_PER_CLINIC:
        recomputed = RECOMPUTED_PER_CLINIC[table]
        if "clinic_id" not in _columns(cat, recomputed):      # not built: no rows rather than all
            return f'{select} FROM marts."{table}" WHERE FALSE', []
        return f'{select} FROM marts."{recomputed}" WHERE clinic_id = ?', [clinic]
    if "clinic_id" in cols:
        return f'{select} FROM marts."{table}" WHERE clinic_id = ?', [clinic]
    if "episode_key" in cols and "clinic_id" not in _columns(cat, "care_pathways"):
        return f'{select} FROM marts."{table}" WHERE FALSE', []   # no episode -> clinic map: no rows
    if "episode_key" in cols:
        return (f'{select} FROM marts."{table}" WHERE episode_key IN '
                f"(SELECT episode_key FROM marts.care_pathways WHERE clinic_id = ?)", [clinic])
    log.warning("marts.%s has no clinic_id or episode_key: the clinic files get it without rows", table)
    return f'{select} FROM marts."{table}" WHERE FALSE', []


def publish(settings: Settings, run_id: str, as_of: str | None = None, target: Path | None = None) -> Path:
    """Copy marts + dq results into fresh files - the network file and one file per clinic - and
    atomically replace the published files with them (each its own rename; the network file last)."""
    if target is None:
        target = as_of_target(settings, as_of) if as_of else settings.analytics
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    safe_run = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)

    with writer(settings) as con:
        # Under the writer lock no other publish is under way: any tmp file is a killed run's.
        for pattern in (f"{target.name}.tmp-*", f"{target.stem}_clinic_*.duckdb.tmp-*"):
            for leftover in target.parent.glob(pattern):
                leftover.unlink(missing_ok=True)
        existing = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'").fetchall()}
        tables = [t for t in MART_TABLES if t in existing]
        missing = [t for t in MART_TABLES if t not in existing]
        if missing:
            log.warning("publishing without marts not built yet: %s", ", ".join(missing))
        cat = _Catalog(con)
        for table in tables:
            bad = sorted(_columns(cat, table) & FORBIDDEN_COLUMNS)
            if bad:
                raise PublishRefused(f"marts.{table} has identifier column(s) {bad}: not published")
        dq_runs = _dq_run_ids(con, run_id)
        published_at = _utcnow()
        clinics = _clinic_ids(con, cat, tables)
        files = [(target, None)] + [(clinic_target(target, c), c) for c in clinics]
        if len({path for path, _ in files}) != len(files):
            raise PublishRefused(f"two clinic ids map to one file name: {clinics}")
        written: list[tuple[Path, Path]] = []
        try:
            for path, clinic in files:
                tmp = path.with_name(f"{path.name}.tmp-{safe_run}")
                _write_snapshot(con, cat, tmp, tables, clinic, dq_runs, run_id, as_of, published_at)
                written.append((tmp, path))
        except BaseException:
            for tmp, _ in written:
                tmp.unlink(missing_ok=True)
            raise
    for tmp, _ in written:
        os.chmod(tmp, settings.analytics_mode)       # the group-readable files (KAP_ANALYTICS_MODE)
        _fsync(tmp)
    crashpoints.reached("publish.before_replace")
    for tmp, path in written[1:] + written[:1]:      # clinic files first, the network file last
        os.replace(tmp, path)
    current = {path for _, path in written}
    for stale in target.parent.glob(f"{target.stem}_clinic_*.duckdb"):
        if stale not in current:                       # a clinic with no rows any more
            stale.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    if target.parent == settings.home:
        os.chmod(settings.home, settings.home_mode)
    log.info("published %d tables to %s and %d clinic files (run %s)", len(tables), target, len(clinics), run_id)
    return target


def _write_snapshot(con, cat: _Catalog, tmp: Path, tables: list[str], clinic: str | None, dq_runs, run_id: str,
                    as_of, published_at) -> None:
    """One published file: the tables (one clinic's rows when `clinic`), dq_results, publish_runs."""
    alias = "kap_publish"
    # BI drivers and the DuckDB shell on PyPI are often DuckDB 1.x, which cannot open the 2.x
    # default storage format; v1.2.0 storage opens in both.
    con.execute(f"ATTACH {path_for_sql(tmp)} AS {alias} (STORAGE_VERSION '{BI_STORAGE_VERSION}')")
    try:
        counts: dict[str, int] = {}
        for table in tables:
            sql, params = _table_source(cat, table, clinic)
            con.execute(f'CREATE TABLE {alias}.main."{table}" AS {sql}', params)
            counts[table] = con.execute(f'SELECT count(*) FROM {alias}.main."{table}"').fetchone()[0]
            crashpoints.reached("publish.mid_copy")
        dq_filter = " OR ".join(["(stage = ? AND run_id = ?)"] * len(dq_runs)) or "FALSE"
        dq_params = [v for pair in dq_runs for v in pair]
        if dq_runs:
            # a clinic's file: the checks' results, without samples of failing rows (any clinic's)
            replace = {"failing_keys_sample": "NULL::VARCHAR AS failing_keys_sample"} if clinic else None
            cols = _formula_safe_columns(cat, "dq", "check_results", replace=replace)
            con.execute(f"CREATE TABLE {alias}.main.dq_results AS SELECT {cols} FROM dq.check_results "
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


# Spreadsheet formula injection: a cell starting with one of these is run as a formula when an
# analyst opens a CSV export of a BI table in a spreadsheet (`=HYPERLINK(...)`, `+cmd|...`,
# `@SUM(...)`, and TAB/CR, which some spreadsheets skip before such a character).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def formula_safe_sql(expr: str) -> str:
    """SQL for `expr` (a VARCHAR) with a leading formula trigger escaped by a single quote, the
    spreadsheet convention for "this is text": '=1+1' -> \"'=1+1\". Other values are unchanged."""
    triggers = ", ".join("chr(%d)" % ord(c) for c in FORMULA_TRIGGERS)
    return f"CASE WHEN left({expr}, 1) IN ({triggers}) THEN chr(39) || {expr} ELSE {expr} END"


def _formula_safe_columns(cat: _Catalog, schema: str, table: str, replace: dict[str, str] | None = None) -> str:
    """The select list of a published table: every text column through formula_safe_sql
    (`replace`: column -> a select item used instead)."""
    out = []
    for name, dtype in cat.columns(schema, table):
        q = '"' + name.replace('"', '""') + '"'
        if replace and name in replace:
            out.append(replace[name])
            continue
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
