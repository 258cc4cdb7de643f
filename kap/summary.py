"""`kap summary`: what the published analytics.duckdb holds, in a few lines.

Reads the BI file read-only (never the warehouse's marts), so it works while a pipeline runs.
Every figure degrades to "n/a" when its mart or column is missing.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb

from kap.settings import Settings, limit_resources


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}


def _columns(con, table: str) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ?",
        [table]).fetchall()}


def _scalar(con, sql: str, params: list | None = None):
    try:
        row = con.execute(sql, params or []).fetchone()
    except duckdb.Error:
        return None
    return row[0] if row else None


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _num(value) -> str:
    return "n/a" if value is None else f"{int(value):,}"


def _quarantined(settings: Settings) -> str:
    """Quarantined records: an aggregate from the warehouse if nobody is writing it right now."""
    if not settings.warehouse.exists():
        return "n/a (no warehouse yet)"
    try:
        con = limit_resources(duckdb.connect(str(settings.warehouse), read_only=True))
    except duckdb.Error:
        return "n/a (warehouse busy)"
    try:
        n = _scalar(con, "SELECT count(*) FROM raw.quarantine")
        files = _scalar(con, "SELECT count(*) FROM raw.ingest_files WHERE status = 'rejected'")
    finally:
        con.close()
    return f"{_num(n or 0)} records (raw.quarantine), {_num(files or 0)} files rejected"


def describe(settings: Settings) -> str:
    analytics = settings.analytics
    latest_report = settings.dq_dir / "latest.html"
    lines = ["KAP pipeline",
             f"  warehouse (restricted): {settings.warehouse}{'' if settings.warehouse.exists() else '  (not created yet)'}",
             f"  analytics (BI, read-only copy): {analytics}{'' if analytics.exists() else '  (not published yet)'}",
             f"  data-quality report: {latest_report}{'' if latest_report.exists() else '  (none yet)'}",
             f"  run reports: {settings.reports_dir}",
             f"  airflow logs: {settings.airflow_home / 'logs'}"]
    if not analytics.exists():
        lines.append("Nothing published yet: run `kap run <landing>` or `make demo`.")
        lines.append(f"  quarantined: {_quarantined(settings)}")
        return "\n".join(lines)
    try:
        con = limit_resources(duckdb.connect(str(analytics), read_only=True))
    except duckdb.Error as error:
        lines.append(f"Cannot open {analytics}: {str(error).splitlines()[0]}")
        return "\n".join(lines)
    try:
        tables = _tables(con)
        lines += _publish_lines(con, tables)
        lines += _now_line(con, tables, settings)
        lines += _headline_lines(con, tables)
        lines += _care_team_lines(con, tables)
        lines.append(f"  quarantined: {_quarantined(settings)}")
        lines += _dq_lines(con, tables)
    finally:
        con.close()
    return "\n".join(lines)


def _now_line(con, tables: set[str], settings: Settings) -> list[str]:
    """ "Now" of the published marts (the knowledge cutoff), and where it came from."""
    if "care_pathways" not in tables or "as_of_at" not in _columns(con, "care_pathways"):
        return []
    now = _scalar(con, "SELECT max(as_of_at) FROM care_pathways")
    if now is None:
        return []
    basis = ""
    if settings.warehouse.exists():
        try:
            wh = limit_resources(duckdb.connect(str(settings.warehouse), read_only=True))
        except duckdb.Error:
            wh = None
        if wh is not None:
            try:
                row = wh.execute("SELECT cutoff_at, basis, manifest_path FROM raw.knowledge_cutoffs "
                                 "ORDER BY recorded_at DESC, run_id DESC LIMIT 1").fetchone()
            except duckdb.Error:
                row = None
            finally:
                wh.close()
            if row and row[0] == now:
                basis = {"manifest_transaction_time": f" (Bulk Data manifest transactionTime, {row[2]})",
                         "latest_ingest_time": " (latest ingest time of an accepted file)"}.get(
                    row[1], f" ({row[1]})")
    return [f"  now (knowledge cutoff): {now:%Y-%m-%d %H:%M:%S} UTC{basis}"]


def _publish_lines(con, tables: set[str]) -> list[str]:
    if "publish_runs" not in tables:
        return []
    row = con.execute("SELECT run_id, as_of, published_at FROM publish_runs ORDER BY published_at DESC LIMIT 1").fetchone()
    if not row:
        return []
    as_of = f", as of {row[1]}" if row[1] else ""
    return [f"Published {row[2]:%Y-%m-%d %H:%M} UTC by run {row[0]}{as_of}"]


def _headline_lines(con, tables: set[str]) -> list[str]:
    out = []
    if "care_pathways" in tables:
        cols = _columns(con, "care_pathways")
        patients = _scalar(con, "SELECT count(DISTINCT patient_key) FROM care_pathways") if "patient_key" in cols else None
        episodes = _scalar(con, "SELECT count(*) FROM care_pathways")
        out.append(f"  patients: {_num(patients)}   episodes: {_num(episodes)}")
        if "is_induction_completed" in cols and "first_dose_at" in cols:
            done = _scalar(con, "SELECT avg(CASE WHEN is_induction_completed THEN 1.0 ELSE 0.0 END) "
                                "FROM care_pathways WHERE first_dose_at IS NOT NULL")
            out.append(f"  induction completed: {_pct(done)} of episodes with a first dose")
        if "is_dropout" in cols and "first_dose_at" in cols:
            drop = _scalar(con, "SELECT avg(CASE WHEN is_dropout THEN 1.0 ELSE 0.0 END) "
                                "FROM care_pathways WHERE first_dose_at IS NOT NULL")
            out.append(f"  dropout: {_pct(drop)} of dosed episodes")
    else:
        out.append("  patients / episodes: n/a (care_pathways not published)")
    if "dosing_sessions" in tables:
        out.append(f"  doses: {_num(_scalar(con, 'SELECT count(*) FROM dosing_sessions'))}")
    else:
        out.append("  doses: n/a (dosing_sessions not published)")
    if "patient_outcomes" in tables and {"instrument", "is_responder", "is_remitter"} <= _columns(con, "patient_outcomes"):
        out += _outcome_lines(con)
    else:
        out.append("  PHQ-9 response: n/a (patient_outcomes not published)")
    if "adherence_patient" in tables and "integration_72h_share" in _columns(con, "adherence_patient"):
        share = _scalar(con, "SELECT sum(doses_with_integration_72h) / nullif(sum(doses_total), 0) FROM adherence_patient")
        out.append(f"  doses followed by integration within 72 h: {_pct(share)}")
    return out


def _outcome_lines(con) -> list[str]:
    """PHQ-9 rates over the assessed episodes (a baseline and a later score); unknown is not "no"."""
    if "outcome_status" not in _columns(con, "patient_outcomes"):
        row = con.execute("""SELECT avg(CASE WHEN is_responder THEN 1.0 ELSE 0.0 END),
                                    avg(CASE WHEN is_remitter THEN 1.0 ELSE 0.0 END), count(*)
                             FROM patient_outcomes WHERE instrument = 'phq9' AND has_baseline""").fetchone()
        return [f"  PHQ-9 response: {_pct(row[0])}, remission: {_pct(row[1])} "
                f"(episodes with a baseline: {_num(row[2])})"]
    counts = dict(con.execute("""SELECT outcome_status, count(*) FROM patient_outcomes
                                 WHERE instrument = 'phq9' GROUP BY 1""").fetchall())
    row = con.execute("""SELECT avg(CASE WHEN is_responder THEN 1.0 ELSE 0.0 END),
                                avg(CASE WHEN is_remitter THEN 1.0 ELSE 0.0 END)
                         FROM patient_outcomes WHERE instrument = 'phq9' AND outcome_status = 'assessed'""").fetchone()
    return [f"  PHQ-9 response: {_pct(row[0])}, remission: {_pct(row[1])} "
            f"(of {_num(counts.get('assessed', 0))} assessed episodes)",
            f"  PHQ-9 outcome status: assessed {_num(counts.get('assessed', 0))}, "
            f"no follow-up score {_num(counts.get('no_followup', 0))}, "
            f"no baseline {_num(counts.get('no_baseline', 0))} (unknown outcomes are not counted as failures)"]
def _care_team_lines(con, tables: set[str]) -> list[str]:
    """Caseload in the latest week and continuity of therapy care (staff_weekly, care_continuity,
    care_team_outcomes)."""
    out = []
    if "staff_weekly" in tables:
        row = _row(con, """
            SELECT max(week_start), count(*), median(active_caseload), max(active_caseload)
            FROM staff_weekly
            WHERE staff_role = 'therapist'
              AND week_start = (SELECT max(week_start) FROM staff_weekly WHERE staff_role = 'therapist')""")
        if row and row[1]:
            out.append(f"  caseload (week of {row[0]}): {_num(row[1])} therapists, median {row[2]:.1f}, "
                       f"largest {_num(row[3])} active episodes")
        else:
            out.append("  caseload: n/a (no therapist contact yet)")
    else:
        out.append("  caseload: n/a (staff_weekly not published)")
    if "care_continuity" in tables:
        row = _row(con, """
            SELECT count(*), avg(CASE WHEN continuity_band = 'upc_75_plus' THEN 1.0 ELSE 0.0 END),
                   avg(coc_index), avg(CASE WHEN is_integrated_by_preparer THEN 1.0
                                            WHEN NOT is_integrated_by_preparer THEN 0.0 END)
            FROM care_continuity WHERE therapy_sessions >= 2""")
        if row and row[0]:
            out.append(f"  continuity: usual therapist (UPC >= 0.75) in {_pct(row[1])} of {_num(row[0])} episodes "
                       f"with 2+ therapy sessions, mean COC {row[2]:.2f}, prepared and first integrated by "
                       f"the same therapist: {_pct(row[3])}")
    if "care_team_outcomes" in tables:
        bands = dict(_rows(con, """SELECT continuity_band, response_rate FROM care_team_outcomes
                                   WHERE episode_route = 'all' AND NOT is_suppressed"""))
        if bands:
            out.append(f"  PHQ-9 response by continuity: UPC >= 0.75 {_pct(bands.get('upc_75_plus'))}, "
                       f"below {_pct(bands.get('upc_under_75'))} (cells of 5 or fewer patients: n/a)")
    return out


def _row(con, sql: str):
    try:
        return con.execute(sql).fetchone()
    except duckdb.Error:
        return None


def _rows(con, sql: str) -> list:
    try:
        return con.execute(sql).fetchall()
    except duckdb.Error:
        return []


def _dq_lines(con, tables: set[str]) -> list[str]:
    if "dq_results" not in tables:
        return ["  data quality: n/a (dq_results not published)"]
    rows = con.execute("""SELECT stage, status, severity, count(*) FROM dq_results
                          GROUP BY ALL ORDER BY ALL""").fetchall()
    if not rows:
        return ["  data quality: no checks were run before this publish"]
    counts: dict[str, dict[str, int]] = {}
    for stage, status, severity, n in rows:
        key = f"{status}_{severity}" if status == "failed" else status
        counts.setdefault(stage, {}).setdefault(key, 0)
        counts[stage][key] += n
    parts = []
    for stage, c in counts.items():
        parts.append(f"{stage}: {c.get('passed', 0)} passed, {c.get('failed_warning', 0)} warnings, "
                     f"{c.get('failed_critical', 0)} critical, {c.get('not_run', 0)} not run")
    out = ["  data quality: " + "; ".join(parts)]
    warnings = con.execute("""SELECT check_id, rows_failed, pct_failed FROM dq_results
                              WHERE status = 'failed' ORDER BY severity, check_id LIMIT 8""").fetchall()
    for check_id, failed, pct in warnings:
        out.append(f"    ! {check_id}: {_num(failed)} rows ({pct:.1f} %)" if pct is not None else f"    ! {check_id}")
    return out
