"""Run catalogue checks: SQL in DuckDB narrows each check to a small pandas DataFrame, and a
Great Expectations 1.x expectation (ephemeral context, pandas engine) judges it.

GX's SQL datasource is broken on DuckDB (STACK.md), so every check reads its rows with DuckDB
first. Only the columns a check needs are fetched; a `condition` is computed by DuckDB into a
boolean column `_ok` which GX then expects to be all true. Nothing here reads the wall clock.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from kap.quality.catalogue import Check
from kap.quality.targets import (LANDING_VIEWS, MART_KEYS, bind, location, mart_table,
                                    night_relation_sql, relation_sql)

log = logging.getLogger(__name__)

SAMPLE_SIZE = 10


@dataclass
class CheckResult:
    run_id: str
    stage: str
    check_id: str
    target: str
    column: str
    check_type: str
    kahn_category: str
    severity: str
    status: str                 # passed | failed | not_run
    rows_checked: int | None
    rows_failed: int | None
    pct_failed: float | None
    threshold_pct: float
    failing_keys_sample: list[str] = field(default_factory=list)
    note: str = ""
    location: str = ""
    detail: str = ""            # why not run, or what failed, in words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_critical_failure(self) -> bool:
        return self.status == "failed" and self.severity == "critical"


# --- Great Expectations, imported lazily (about 6 s) -------------------------------------------

_GX: dict[str, Any] = {}


def _refuse_silent_exit() -> None:
    """With pyspark installed (the spark extra), GX imports pyspark's connect modules, which end
    the process with exit code 0 when `__main__` looks like a doctest run (`python -c`, a
    here-document): checks would silently not run. Fail loudly instead."""
    import importlib.util
    import sys

    main = sys.modules.get("__main__")
    if (importlib.util.find_spec("pyspark") is not None and main is not None
            and getattr(main, "__spec__", None) is None and not hasattr(main, "__file__")
            and not hasattr(sys, "ps1")):
        raise RuntimeError("the data-quality checks cannot run in a `python -c` process while pyspark is "
                           "installed (pyspark would end it silently on importing Great Expectations); "
                           "run them from a script or `kap validate`")


def _gx():
    if not _GX:
        _refuse_silent_exit()
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every DataFrame below HASH_THRESHOLD bytes (shallow memory usage, so
        # nearly all of ours) with pandas' row hashing, twice per check; the fingerprint is only a
        # batch marker nothing here reads, and it cost more than the expectation itself
        # (4 of 5 s for a uniqueness check on 1.1 M rows). A threshold of 0 skips it.
        pandas_execution_engine.HASH_THRESHOLD = 0

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = context.data_sources.add_pandas("kap_quality")
        asset = source.add_dataframe_asset("check_rows")
        _GX.update(gx=gx, gxe=gxe, context=context,
                   batch_definition=asset.add_batch_definition_whole_dataframe("whole"))
    return _GX


def expectation_for(check: Check):
    """Translate one catalogue row into a GX 1.x expectation on the check's DataFrame."""
    gxe = _gx()["gxe"]
    mostly = max(0.0, min(1.0, 1.0 - check.threshold_pct / 100.0))
    meta = {"check_id": check.check_id}
    kind = check.check_type
    if kind == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=check.columns[0], mostly=mostly, meta=meta)
    if kind == "unique":
        if len(check.columns) > 1:
            return gxe.ExpectCompoundColumnsToBeUnique(column_list=check.columns, mostly=mostly, meta=meta)
        return gxe.ExpectColumnValuesToBeUnique(column=check.columns[0], mostly=mostly, meta=meta)
    if kind == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(column=check.columns[0], value_set=check.value_set(),
                                               mostly=mostly, meta=meta)
    if kind == "between":
        low, high = check.bounds()
        return gxe.ExpectColumnValuesToBeBetween(column=check.columns[0], min_value=low, max_value=high,
                                                 mostly=mostly, meta=meta)
    if kind == "condition":
        return gxe.ExpectColumnValuesToBeInSet(column="_ok", value_set=[True], mostly=mostly, meta=meta)
    if kind == "row_count_min":
        return gxe.ExpectTableRowCountToBeBetween(min_value=int(float(check.params)), meta=meta)
    raise ValueError(f"unknown check type {kind}")


# --- SQL side ----------------------------------------------------------------------------------

def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def mart_columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Every mart's columns in order, in one catalogue query (one per check took about 1 s of a
    mart stage's 6 s at 10k patients)."""
    out: dict[str, list[str]] = {}
    for table, column in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'marts' ORDER BY table_name, ordinal_position").fetchall():
        out.setdefault(table, []).append(column)
    return out


def _key_expr(check: Check, mart_cols: list[str] | None) -> str:
    table = mart_table(check.target)
    if table is None:
        return _quote(LANDING_VIEWS[check.target.split(".", 1)[1]].key)
    for candidate in MART_KEYS.get(table, ()):
        if candidate in (mart_cols or []):
            return _quote(candidate)
    return _quote(mart_cols[0]) if mart_cols else "NULL"


def check_sql(check: Check, run_id: str, now: str | None, mart_cols: list[str] | None = None,
              relations: dict[str, str] | None = None) -> str:
    """The query producing the DataFrame GX validates for this check."""
    relation = (relations or {}).get(check.target) or relation_sql(check.target)
    where = f"WHERE {check.where}" if check.where else ""
    if _by_rowid(check, relations):
        key = "t.rowid AS _key"      # the row's key is looked up for the failing sample only
    else:
        key = f"CAST({_key_expr(check, mart_cols)} AS VARCHAR) AS _key"
    kind = check.check_type
    if kind == "condition":
        select = f"{key}, coalesce(({check.params}), FALSE) AS _ok"
    elif kind == "row_count_min":
        select = key
    elif kind == "between":
        select = f"{key}, CAST({_quote(check.columns[0])} AS DOUBLE) AS {_quote(check.columns[0])}"
    elif kind == "not_null":
        # only whether a value is there matters (no value is ever shown): a 1-byte flag per row,
        # not the value, keeps the frame small on a log of millions of events
        select = ", ".join([key] + [f"CAST(CASE WHEN {_quote(c)} IS NOT NULL THEN 1 END AS TINYINT) AS {_quote(c)}"
                                    for c in check.columns])
    elif kind == "unique" and len(check.columns) == 1:
        # equal values get equal numbers (and NULL stays NULL), so GX finds the same duplicates on a
        # number per row instead of a 64-character id; duplicates are reported by key, never by value
        column = _quote(check.columns[0])
        select = f"{key}, CASE WHEN {column} IS NOT NULL THEN dense_rank() OVER (ORDER BY {column}) END AS {column}"
    else:
        select = ", ".join([key] + [_quote(c) for c in check.columns])
    sql = f"SELECT {select} FROM {relation} AS t {where}"
    if kind == "row_count_min":
        sql += f" LIMIT {max(int(float(check.params)), 1)}"
    elif not _by_rowid(check, relations) or (kind == "unique" and len(check.columns) == 1):
        # a table's row order can change when dbt rebuilds it, and a window returns rows in its
        # own order; the failing-key sample must not (a rowid orders as the table was written)
        sql += " ORDER BY _key"
    return bind(sql, run_id, now)


def _by_rowid(check: Check, relations: dict[str, str] | None) -> bool:
    """A landing view computed once into a temp table: its checks carry the table's rowid instead
    of the (64-character) key, so a check fetches one small column per row, not two strings."""
    return check.target in (relations or {})


def _sample_keys(con: duckdb.DuckDBPyConnection, check: Check, relations: dict[str, str] | None,
                 keys: list[str]) -> list[str]:
    """Failing-row sample as keys: rowids of a computed landing view become that view's keys."""
    if not keys or not _by_rowid(check, relations):
        return keys
    ids = [int(k) for k in keys if k != "NULL"]
    found = dict(con.execute(
        f"SELECT rowid, CAST({_key_expr(check, None)} AS VARCHAR) FROM {relations[check.target]} "
        f"WHERE rowid IN (SELECT unnest(?::BIGINT[]))", [ids]).fetchall())
    return [_clean_key(found.get(int(k))) if k != "NULL" else k for k in keys]


def _not_run(check: Check, run_id: str, reason: str) -> CheckResult:
    detail = reason
    if check.severity == "critical":
        detail += " (catalogue severity critical; reported as warning until it can run)"
    return CheckResult(run_id, check.stage, check.check_id, check.target, check.column, check.check_type,
                       check.kahn_category, "warning", "not_run", None, None, None, check.threshold_pct,
                       [], check.note, _location_or(check), detail)


def _location_or(check: Check) -> str:
    try:
        return location(check.target)
    except KeyError:
        return check.target


def _clean_key(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NULL"
    return str(value)


def run_check(con: duckdb.DuckDBPyConnection, check: Check, run_id: str, now: str | None,
              relations: dict[str, str] | None = None,
              columns: dict[str, list[str]] | None = None) -> CheckResult:
    """Run one check and return its result; a check that cannot run is `not_run`, never passed.
    columns: mart_columns(con) when the caller runs many checks (else it is read here)."""
    relation = (relations or {}).get(check.target) or relation_sql(check.target)
    mart_cols: list[str] | None = None
    table = mart_table(check.target)
    if table is not None:
        mart_cols = (columns if columns is not None else mart_columns(con)).get(table)
        if mart_cols is None:
            return _not_run(check, run_id, f"table marts.{table} does not exist (yet)")
        missing = [c for c in check.columns if c not in mart_cols]
        if missing:
            return _not_run(check, run_id, f"marts.{table} has no column {', '.join(missing)}")
    sql = check_sql(check, run_id, now, mart_cols, relations)
    try:
        frame = con.execute(sql).df()
        rows_total = None
        if check.check_type == "row_count_min":
            rows_total = con.execute(
                bind(f"SELECT count(*) FROM {relation} AS t"
                     + (f" WHERE {check.where}" if check.where else ""), run_id, now)).fetchone()[0]
    except duckdb.Error as error:
        return _not_run(check, run_id, f"query failed: {str(error).splitlines()[0]}")

    gx = _gx()
    batch = gx["batch_definition"].get_batch(batch_parameters={"dataframe": frame})
    try:
        outcome = batch.validate(expectation_for(check), result_format={
            "result_format": "SUMMARY", "unexpected_index_column_names": ["_key"],
            "partial_unexpected_count": SAMPLE_SIZE * 5})
    except Exception as error:  # GX raises for malformed input; report, don't crash the run
        return _not_run(check, run_id, f"great_expectations error: {error}")
    info = outcome.exception_info or {}
    raised = info.get("raised_exception") or any(
        isinstance(v, dict) and v.get("raised_exception") for v in info.values())
    if raised:
        message = info.get("exception_message") or next(
            (v.get("exception_message") for v in info.values() if isinstance(v, dict) and v.get("exception_message")), "")
        return _not_run(check, run_id, f"great_expectations error: {message}")

    result = outcome.result or {}
    if check.check_type == "row_count_min":
        rows_checked = int(rows_total or 0)
        failed = not outcome.success
        rows_failed, pct = (1, 100.0) if failed else (0, 0.0)
        sample: list[str] = []
        detail = f"{rows_checked} rows, at least {int(float(check.params))} expected" if failed else ""
    else:
        element_count = int(result.get("element_count") or 0)
        missing_count = int(result.get("missing_count") or 0)
        rows_checked = element_count if check.check_type == "not_null" else element_count - missing_count
        rows_failed = int(result.get("unexpected_count") or 0)
        pct = round(100.0 * rows_failed / rows_checked, 4) if rows_checked else 0.0
        failed = rows_failed > 0 and pct > check.threshold_pct
        sample = []
        for row in result.get("partial_unexpected_index_list") or []:
            key = _clean_key(row.get("_key"))
            if key not in sample:
                sample.append(key)
            if len(sample) >= SAMPLE_SIZE:
                break
        sample = _sample_keys(con, check, relations, sample)
        detail = ""
        if failed:
            values = result.get("partial_unexpected_list") or []
            shown = ", ".join(_clean_key(v) for v in values[:5]) if check.check_type in ("in_set", "between") else ""
            detail = f"{rows_failed} of {rows_checked} rows failed ({pct:.2f} %)" + (f"; values: {shown}" if shown else "")
    return CheckResult(run_id, check.stage, check.check_id, check.target, check.column, check.check_type,
                       check.kahn_category, check.severity, "failed" if failed else "passed",
                       rows_checked, rows_failed, pct, check.threshold_pct, sample, check.note,
                       _location_or(check), detail)


def materialise_landing_views(con: duckdb.DuckDBPyConnection, checks: list[Check], run_id: str,
                              now: str | None, full: bool = True) -> tuple[dict[str, str], set[str]]:
    """Compute each landing view the checks use once, into a temp table: (target -> table, the
    targets read in part).

    A landing view extracts payload fields from this run's events; dozens of checks read the same
    view, so computing it once keeps validation proportional to the run's size, not to
    size x checks. A view of the whole log is read in part on a night (`full` false, see
    night_scope). A view that fails to compute is left out: its checks then run (and report
    their own error) against the plain query.
    """
    relations: dict[str, str] = {}
    read_in_part: set[str] = set()
    for target in dict.fromkeys(c.target for c in checks if mart_table(c.target) is None):
        name = "dq_" + target.split(".", 1)[-1]
        night = None if full else night_scope(con, target, checks, run_id)
        # the night's part first when there is one; the whole view when that part fails to compute
        for sql, in_part in ([(night, True)] if night else []) + [(relation_sql(target), False)]:
            try:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {bind(sql, run_id, now)} AS v")
            except duckdb.Error as error:
                log.warning("landing view %s could not be computed%s: %s", target,
                            " for the night (reading it whole)" if in_part else " once",
                            str(error).splitlines()[0])
                continue
            relations[target] = name
            if in_part:
                read_in_part.add(target)
            break
    return relations, read_in_part


NIGHT_DETAIL = ("read for the night: the current version of the records this run sent and of every "
                "record with a version failing a check of this target; the full checks read every record")


def night_scope(con: duckdb.DuckDBPyConnection, target: str, checks: list[Check], run_id: str) -> str | None:
    """The night's part of a whole-log landing view, or None to read it whole.

    Every check on the view must be a row `condition`: a version failing one of them puts its record
    in the night's part, so a failing current version is found whatever night it arrived. Read whole
    when the run brought half the log or more (a first load: the part would be the whole)."""
    on_target = [c for c in checks if c.target == target]
    if not on_target or any(c.check_type != "condition" for c in on_target):
        return None
    failing = " OR ".join(f"NOT coalesce(({c.params}), FALSE)" for c in on_target)
    sql = night_relation_sql(target, failing)
    if sql is None:
        return None
    added, logged = con.execute(
        "SELECT (SELECT coalesce(sum(events_added), 0) FROM raw.ingest_files WHERE run_id = ?), "
        "(SELECT count(*) FROM raw.events)", [run_id]).fetchone()
    return sql if 2 * added < logged else None


def run_checks(con: duckdb.DuckDBPyConnection, checks: list[Check], run_id: str,
               now: str | None, full: bool = True) -> list[CheckResult]:
    """Run the checks; `full` false reads a whole-log landing view in part (night_scope)."""
    relations, read_in_part = materialise_landing_views(con, checks, run_id, now, full=full)
    try:
        columns = mart_columns(con)
        results = [run_check(con, check, run_id, now, relations, columns) for check in checks]
    finally:
        for name in relations.values():
            con.execute(f"DROP TABLE IF EXISTS {name}")
    for result in results:
        if result.target in read_in_part and result.status != "not_run" and not result.detail:
            result.detail = NIGHT_DETAIL
    return results


def sample_json(result: CheckResult) -> str:
    return json.dumps(result.failing_keys_sample)
