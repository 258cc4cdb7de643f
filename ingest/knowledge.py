"""Knowledge time: what bounds it at ingest, and "now" as the knowledge cutoff of the data received.

Rules (docs/inputs.md, "Knowledge time"):
- a record's knowledge time (`recorded_at`) is its source's `meta.lastUpdated` / `recorded_at` /
  `amended_at` / `signed_at`; a FHIR resource without `meta.lastUpdated` takes the `transactionTime`
  of its drop's Bulk Data manifest, else its file's ingest time;
- nobody can have recorded something after we received it: a knowledge time later than the file's
  ingest time plus `CLOCK_SKEW` is quarantined `recorded_after_ingest` and never enters the log;
- "now" for the as-of rules is the knowledge cutoff of the data received, recorded per ingest run in
  `raw.knowledge_cutoffs`: the manifest `transactionTime` of the latest run's drops where one exists,
  else the latest ingest time of a file with accepted records; never later than the run's start.
"""
from __future__ import annotations

import datetime as dt

import duckdb

# Source clocks and ours disagree a little; a knowledge time up to this much after the ingest
# time is accepted (it is still bounded: nothing can move "now" past the run that received it).
CLOCK_SKEW = dt.timedelta(minutes=15)
CLOCK_SKEW_SQL = f"INTERVAL {int(CLOCK_SKEW.total_seconds())} SECOND"


def record_cutoff(con: duckdb.DuckDBPyConnection, run_id: str, run_started_at: dt.datetime) -> dict:
    """Compute and store this run's knowledge cutoff in raw.knowledge_cutoffs; return the row.

    Candidates, in order: the latest `transactionTime` among the manifests of the latest run that
    accepted records (a drop's export time); else that run's latest ingest time of a file with
    accepted records; else the previous cutoff; else NULL (nothing received yet). Never earlier
    than the previous cutoff (a backfilled old drop does not move "now" back), and capped at the
    run's start, so a manifest dated in the future cannot move "now" past it.
    """
    row = con.execute("""
        WITH latest_run AS (
            SELECT run_id, max(ingested_at) AS ingested_at
            FROM raw.ingest_files
            WHERE status = 'ingested' AND records_accepted > 0 AND run_id IS NOT NULL
            GROUP BY run_id ORDER BY max(ingested_at) DESC, run_id DESC LIMIT 1
        ), latest_drops AS (
            -- the EHR drop folders of the latest run's accepted files
            SELECT DISTINCT regexp_replace(f.path, '/[^/]*$', '') AS drop_folder
            FROM raw.ingest_files f JOIN latest_run l ON f.run_id = l.run_id
            WHERE f.source = 'ehr' AND f.status = 'ingested' AND f.records_accepted > 0
        ), manifest AS (
            SELECT max(m.transaction_time) AS t, arg_max(m.path, m.transaction_time) AS path
            FROM raw.export_manifests m JOIN latest_drops d ON m.drop_folder = d.drop_folder
            WHERE m.transaction_time IS NOT NULL AND m.problem IS NULL
        ), previous AS (
            SELECT cutoff_at FROM raw.knowledge_cutoffs ORDER BY recorded_at DESC, run_id DESC LIMIT 1
        )
        SELECT
            CASE WHEN (SELECT t FROM manifest) IS NOT NULL THEN 'manifest_transaction_time'
                 WHEN (SELECT ingested_at FROM latest_run) IS NOT NULL THEN 'latest_ingest_time'
                 WHEN (SELECT cutoff_at FROM previous) IS NOT NULL THEN 'previous_cutoff'
            END AS basis,
            coalesce((SELECT t FROM manifest), (SELECT ingested_at FROM latest_run),
                     (SELECT cutoff_at FROM previous)) AS candidate,
            (SELECT path FROM manifest) AS manifest_path,
            (SELECT run_id FROM latest_run) AS basis_run_id
    """).fetchone()
    basis, candidate, manifest_path, basis_run = row
    previous = con.execute("SELECT cutoff_at FROM raw.knowledge_cutoffs "
                           "ORDER BY recorded_at DESC, run_id DESC LIMIT 1").fetchone()
    if previous and previous[0] is not None and candidate is not None and candidate < previous[0]:
        # what was received stays received: a drop exported earlier than the last one (a backfill)
        # never moves "now" back
        basis, candidate, manifest_path = "previous_cutoff", previous[0], None
    cutoff = None if candidate is None else min(candidate, run_started_at)
    if candidate is not None and candidate > run_started_at:
        basis = f"{basis}_capped_at_run_start"
    con.execute("""
        INSERT INTO raw.knowledge_cutoffs (run_id, cutoff_at, basis, manifest_path, basis_run_id,
                                           run_started_at, recorded_at)
        VALUES (?, ?, ?, ?, ?, ?, ?)
    """, [run_id, cutoff, basis, manifest_path, basis_run, run_started_at, run_started_at])
    return {"run_id": run_id, "cutoff_at": cutoff, "basis": basis, "manifest_path": manifest_path,
            "basis_run_id": basis_run}
