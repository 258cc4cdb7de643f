"""The event log as a lake: raw.events, raw.quarantine, raw.ingest_files and raw.knowledge_cutoffs
copied to hive-partitioned Parquet under KAP_LAKE (default KAP_HOME/lake), for the Spark engine.

DuckDB stays the single writer and the system of record; the lake is derived from it and only ever
catches up. `sync` runs after an ingest has committed (kap.pipeline.step_ingest) and writes one
Parquet part per commit unit that the lake lacks:

- a landing file's commit: its events, quarantine rows and raw.ingest_files row, all stamped with
  the run's ingest time;
- a run's release of parked records (ingest/parking.py): events of an earlier file appended with
  the releasing run's ingest time, so their part is (that file, that time);
- a run's knowledge cutoff row.

A unit never changes once committed (the log is append-only), so its part is named after it
(`part-<file_id>-<ingest time>.parquet` in `source=<s>/ingest_date=<d>/`) and written to a hidden
temporary name, then renamed: a part that exists is complete. Hence a re-run writes nothing, a run
killed between the DuckDB commit and the lake write leaves parts missing that the next sync writes,
and a run killed mid-write leaves only a hidden temporary file (removed by the next sync, and
ignored by Spark and DuckDB readers, which skip names starting with '.'). No row is written twice,
none is lost. Order: DuckDB first, then the lake; never the other way round.

Types are the ones Spark reads (STACK.md): TIMESTAMP as Parquet timestamps (Spark:
timestamp_ntz), the JSON payload as a string; no UUID or INTERVAL columns.

`reconcile` compares the lake with the log by row count and an order-independent checksum per
table; the landing check `landing_lake_matches_log` (expectations/checks.csv) reads its result. On a
night the checksums cover the rows committed since the check last passed (`night_since`), so the
check reads the night's parts, not the whole lake; the full checks read every row.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingest import crashpoints
from kap.warehouse import path_for_sql

log = logging.getLogger(__name__)

#: The temp table `stage_check` fills and the landing view log_lake reads.
RECONCILIATION_TABLE = "kap_lake_reconciliation"


@dataclass(frozen=True)
class LakeTable:
    """One raw table in the lake: its columns in the Parquet files and how rows group into parts."""

    name: str                    # folder under the lake root, and the raw table's name
    columns: tuple[str, ...]     # select list of a part (the partition columns come from the path)
    partitions: tuple[str, ...]  # hive partition columns, in folder order
    units: str                   # SQL: one row per part - partition values, unit id, stamp
    rows: str                    # SQL with ? for unit id and stamp: the rows of one part
    order: str                   # stable row order inside a part
    relation: str = ""           # the raw rows with the partition values but the date (default raw.<name>)
    stamp: str = "ingested_at"   # the commit time of a row (its date is the last partition's value)

    def log_relation(self) -> str:
        return self.relation or f"raw.{self.name}"


_SOURCE_DATE = ("source", "ingest_date")

TABLES: tuple[LakeTable, ...] = (
    LakeTable(
        "events",
        ("event_id", "event_type", "patient_key", "occurred_at", "recorded_at", "ingested_at", "file_id",
         "source_record_id", "CAST(payload AS VARCHAR) AS payload"),
        _SOURCE_DATE,
        "SELECT source, CAST(ingested_at AS DATE), file_id, ingested_at FROM raw.events GROUP BY ALL",
        "FROM raw.events WHERE source = ? AND file_id = ? AND ingested_at = ?",
        "event_id"),
    LakeTable(
        "quarantine",
        ("file_id", "line_number", "reason_code", "detail", "raw_record", "quarantined_at"),
        _SOURCE_DATE,
        "SELECT coalesce(f.source, 'unknown'), CAST(q.quarantined_at AS DATE), q.file_id, q.quarantined_at "
        "FROM raw.quarantine q LEFT JOIN raw.ingest_files f USING (file_id) GROUP BY ALL",
        "FROM raw.quarantine q WHERE coalesce((SELECT source FROM raw.ingest_files f "
        "WHERE f.file_id = q.file_id), 'unknown') = ? AND q.file_id = ? AND q.quarantined_at = ?",
        "line_number",
        "(SELECT q.*, coalesce(f.source, 'unknown') AS source FROM raw.quarantine q "
        "LEFT JOIN raw.ingest_files f USING (file_id))",
        "quarantined_at"),
    LakeTable(
        "ingest_files",
        ("file_id", "path", "sha256", "status", "reject_reason", "size_bytes", "records_read",
         "records_accepted", "records_quarantined", "records_duplicate", "records_ignored", "events_added",
         "ingested_at", "run_id"),
        _SOURCE_DATE,
        "SELECT source, CAST(ingested_at AS DATE), file_id, ingested_at FROM raw.ingest_files GROUP BY ALL",
        "FROM raw.ingest_files WHERE source = ? AND file_id = ? AND ingested_at = ?",
        "file_id"),
    LakeTable(
        "knowledge_cutoffs",
        ("run_id", "cutoff_at", "basis", "manifest_path", "basis_run_id", "run_started_at", "recorded_at"),
        ("recorded_date",),
        "SELECT CAST(recorded_at AS DATE), run_id, recorded_at FROM raw.knowledge_cutoffs GROUP BY ALL",
        "FROM raw.knowledge_cutoffs WHERE run_id = ? AND recorded_at = ?",
        "run_id", stamp="recorded_at"),
)
TABLE_NAMES = tuple(t.name for t in TABLES)


def _table(name: str) -> LakeTable:
    return next(t for t in TABLES if t.name == name)


def _column_name(expr: str) -> str:
    return expr.rsplit(" AS ", 1)[-1].strip()


def _stamp(value: dt.datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%S%f")


def _unit_name(unit: str) -> str:
    """A file-name-safe, unique form of a unit id (a sha256 file id stays readable)."""
    if re.fullmatch(r"[0-9A-Za-z_-]{1,80}", unit):
        return unit
    return "h" + hashlib.sha256(unit.encode()).hexdigest()[:40]


def part_path(root: Path, table: LakeTable, partition_values: tuple, unit: str, stamp: dt.datetime) -> Path:
    folder = root / table.name
    for column, value in zip(table.partitions, partition_values):
        folder = folder / f"{column}={value}"
    return folder / f"part-{_unit_name(str(unit))}-{_stamp(stamp)}.parquet"


def _existing_parts(root: Path, table: LakeTable) -> set[Path]:
    base = root / table.name
    return set(base.rglob("part-*.parquet")) if base.is_dir() else set()


def _remove_leftovers(root: Path) -> int:
    """Hidden temporary parts of a killed sync (never read by anyone)."""
    removed = 0
    if root.is_dir():
        for leftover in root.rglob(".part-*.tmp-*"):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def sync(con: duckdb.DuckDBPyConnection, root: Path) -> dict[str, int]:
    """Write every part the lake lacks (see the module doc); return parts written per table.

    con: the warehouse writer's connection (the caller holds the single-writer lock), after the
    ingest committed.
    """
    root = Path(root)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _remove_leftovers(root):
        log.info("lake: removed temporary parts of an interrupted sync")
    written: dict[str, int] = {}
    for table in TABLES:
        existing = _existing_parts(root, table)
        count = 0
        for *partition_values, unit, stamp in con.execute(table.units).fetchall():
            path = part_path(root, table, tuple(partition_values), unit, stamp)
            if path in existing:
                continue
            _write_part(con, table, path, partition_values, unit, stamp)
            count += 1
            crashpoints.reached("lake.between_parts")
        written[table.name] = count
    if any(written.values()):
        log.info("lake %s: wrote %s", root, ", ".join(f"{n} {t} parts" for t, n in written.items() if n))
    return written


def _write_part(con, table: LakeTable, path: Path, partition_values: list, unit: str, stamp) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}")
    params = ([*partition_values[:1]] if table.partitions == _SOURCE_DATE else []) + [unit, stamp]
    con.execute(f"COPY (SELECT {', '.join(table.columns)} {table.rows} ORDER BY {table.order}) "
                f"TO {path_for_sql(tmp)} (FORMAT parquet, COMPRESSION zstd)", params)
    crashpoints.reached("lake.before_rename")
    os.replace(tmp, path)


# --- reconciliation: the lake against the log --------------------------------------------------

def _hash_columns(table: LakeTable) -> list[str]:
    cols = [_column_name(c) for c in table.columns]
    if "source" in table.partitions:
        cols.append("source")
    return cols


def _checksum_sql(table: LakeTable, relation: str, where: str = "") -> str:
    cols = ", ".join(f"CAST({c} AS VARCHAR)" for c in _hash_columns(table))
    return (f"SELECT count(*) AS n, coalesce(sum(hash({cols})::HUGEINT), 0) AS checksum FROM {relation}"
            + (f" WHERE {where}" if where else ""))


def lake_relation(root: Path, table: LakeTable) -> str | None:
    """A DuckDB relation over the table's parts (None when it has none)."""
    base = Path(root) / table.name
    if not base.is_dir() or next(base.rglob("part-*.parquet"), None) is None:
        return None
    pattern = path_for_sql(base / ("*/" * len(table.partitions)) / "part-*.parquet")
    return f"read_parquet({pattern}, hive_partitioning = true, hive_types_autocast = false)"


def reconcile(con: duckdb.DuckDBPyConnection, root: Path, since: dt.datetime | None = None) -> list[dict]:
    """Per lake table: rows and checksum in the log and in the lake.

    since: the checksums cover only the rows committed after it (the lake side reads only the date
    partitions from its date on); the row counts still cover every row, so a part lost or copied
    anywhere is found. None: every row (the full checks, the Spark engine's require_match)."""
    out = []
    for table in TABLES:
        relation = lake_relation(root, table)
        if since is None:
            log_n, log_sum = con.execute(_checksum_sql(table, table.log_relation())).fetchone()
            lake_n, lake_sum = (0, 0) if relation is None else con.execute(_checksum_sql(table, relation)).fetchone()
        else:
            newer = f"{table.stamp} > ?"
            log_n = con.execute(f"SELECT count(*) FROM {table.log_relation()}").fetchone()[0]
            _, log_sum = con.execute(_checksum_sql(table, table.log_relation(), newer), [since]).fetchone()
            lake_n, lake_sum = 0, 0
            if relation is not None:
                lake_n = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
                # hive partition values are text: 'YYYY-MM-DD' compares as the date does
                _, lake_sum = con.execute(_checksum_sql(table, relation, f"{table.partitions[-1]} >= ? AND {newer}"),
                                          [since.date().isoformat(), since]).fetchone()
        out.append({"lake_table": table.name, "log_rows": int(log_n), "lake_rows": int(lake_n),
                    "log_checksum": str(log_sum), "lake_checksum": str(lake_sum)})
    return out


#: The landing check that reads the reconciliation (expectations/checks.csv).
CHECK_ID = "landing_lake_matches_log"


def night_since(con: duckdb.DuckDBPyConnection) -> dt.datetime | None:
    """Where a night's lake check may start its checksums: the start of the latest landing validation
    whose lake check passed (every row committed before it was compared by that check or an earlier
    passing one). None when there is none: read everything. A failing check keeps the start where
    it was, so the next night compares the same rows again."""
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'dq' "
                       "AND table_name IN ('validation_runs', 'check_results')").fetchone()[0] == 2:
        return None
    return con.execute(f"""
        SELECT max(v.started_at) FROM dq.validation_runs v
        JOIN dq.check_results c ON c.run_id = v.run_id AND c.stage = v.stage
        WHERE v.stage = 'landing' AND v.as_of IS NULL AND c.check_id = '{CHECK_ID}' AND c.status = 'passed'
    """).fetchone()[0]


def stage_check(con: duckdb.DuckDBPyConnection, root: Path, since: dt.datetime | None = None) -> None:
    """Fill the temp table the landing view log_lake reads (one row per lake table); `since` as in
    reconcile."""
    rows = reconcile(con, root, since)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {RECONCILIATION_TABLE} (lake_table VARCHAR, log_rows BIGINT, "
                "lake_rows BIGINT, log_checksum VARCHAR, lake_checksum VARCHAR, lake_root VARCHAR)")
    con.executemany(f"INSERT INTO {RECONCILIATION_TABLE} VALUES (?, ?, ?, ?, ?, ?)",
                    [[r["lake_table"], r["log_rows"], r["lake_rows"], r["log_checksum"], r["lake_checksum"],
                      str(root)] for r in rows])


class LakeMismatch(RuntimeError):
    """The lake does not hold exactly the log's rows: the Spark engine would build from a wrong copy."""


def require_match(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """Raise LakeMismatch unless every lake table equals the log (count and checksum)."""
    bad = [r for r in reconcile(con, root)
           if (r["log_rows"], r["log_checksum"]) != (r["lake_rows"], r["lake_checksum"])]
    if bad:
        detail = "; ".join(f"{r['lake_table']}: log {r['log_rows']} rows, lake {r['lake_rows']} rows"
                           + (", checksums differ" if r["log_rows"] == r["lake_rows"] else "") for r in bad)
        raise LakeMismatch(f"the lake {root} does not match the event log ({detail}); "
                           "run `kap lake sync` (rewrites missing parts) or remove the damaged parts and sync")
