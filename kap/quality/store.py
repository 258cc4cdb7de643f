"""Data-quality results as warehouse tables: dq.validation_runs and dq.check_results.

Queryable, not only log output (Tuva). Re-validating the same run and stage replaces its rows.
"""
from __future__ import annotations

import json

import duckdb

from kap.quality.runner import CheckResult

DQ_SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS dq;
CREATE TABLE IF NOT EXISTS dq.validation_runs (
    run_id          VARCHAR NOT NULL,
    stage           VARCHAR NOT NULL,   -- landing | marts
    started_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP NOT NULL,
    status          VARCHAR NOT NULL,   -- passed | warning | failed
    checks          INTEGER NOT NULL,
    failed_critical INTEGER NOT NULL,
    failed_warning  INTEGER NOT NULL,
    not_run         INTEGER NOT NULL,
    as_of           TIMESTAMP,          -- the as_of the run was asked for, if any
    checked_now     TIMESTAMP,          -- the "now" future-date checks compared with
    report_path     VARCHAR
);
CREATE TABLE IF NOT EXISTS dq.check_results (
    run_id              VARCHAR NOT NULL,
    stage               VARCHAR NOT NULL,
    check_id            VARCHAR NOT NULL,
    target              VARCHAR NOT NULL,
    "column"            VARCHAR,
    check_type          VARCHAR NOT NULL,
    kahn_category       VARCHAR NOT NULL,
    severity            VARCHAR NOT NULL,   -- critical | warning
    status              VARCHAR NOT NULL,   -- passed | failed | not_run
    rows_checked        BIGINT,
    rows_failed         BIGINT,
    pct_failed          DOUBLE,
    threshold_pct       DOUBLE,
    failing_keys_sample VARCHAR,            -- JSON list of up to 10 keys of failing rows
    note                VARCHAR,            -- why the check exists
    location            VARCHAR,            -- where the failing rows are
    detail              VARCHAR             -- what failed, or why the check did not run
);
"""

RESULT_COLUMNS = ("run_id", "stage", "check_id", "target", "column", "check_type", "kahn_category",
                  "severity", "status", "rows_checked", "rows_failed", "pct_failed", "threshold_pct",
                  "failing_keys_sample", "note", "location", "detail")


def ensure_dq_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DQ_SCHEMA_SQL)


def store_results(con: duckdb.DuckDBPyConnection, run: dict, results: list[CheckResult]) -> None:
    """Replace this (run_id, stage)'s rows with the new results, in one transaction."""
    ensure_dq_schema(con)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM dq.check_results WHERE run_id = ? AND stage = ?", [run["run_id"], run["stage"]])
        con.execute("DELETE FROM dq.validation_runs WHERE run_id = ? AND stage = ?", [run["run_id"], run["stage"]])
        if results:
            cols = ", ".join(f'"{c}"' for c in RESULT_COLUMNS)
            marks = ", ".join("?" for _ in RESULT_COLUMNS)
            rows = []
            for r in results:
                d = r.to_dict()
                d["failing_keys_sample"] = json.dumps(r.failing_keys_sample)
                rows.append([d[c] for c in RESULT_COLUMNS])
            con.executemany(f"INSERT INTO dq.check_results ({cols}) VALUES ({marks})", rows)
        keys = list(run)
        con.execute(f"INSERT INTO dq.validation_runs ({', '.join(keys)}) VALUES ({', '.join('?' for _ in keys)})",
                    [run[k] for k in keys])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def results_for_run(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[list[dict], list[dict]]:
    """(validation_runs rows, check_results rows) of one run, as dicts."""
    ensure_dq_schema(con)
    def fetch(sql: str) -> list[dict]:
        cur = con.execute(sql, [run_id])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    runs = fetch("SELECT * FROM dq.validation_runs WHERE run_id = ? ORDER BY started_at, stage")
    checks = fetch("""SELECT * FROM dq.check_results WHERE run_id = ?
                      ORDER BY stage, CASE status WHEN 'failed' THEN 0 WHEN 'not_run' THEN 1 ELSE 2 END,
                               CASE severity WHEN 'critical' THEN 0 ELSE 1 END, check_id""")
    return runs, checks
