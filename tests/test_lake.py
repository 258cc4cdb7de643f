"""The lake (kap/lake.py): the event log's Parquet copy, written after each committed ingest.

- one part per commit unit, and a re-run writes nothing;
- a run killed after the DuckDB commit and before (or while) the lake is written leaves the lake
  behind, never wrong: the next run writes exactly the missing parts, no row twice;
- the landing check landing_lake_matches_log (a row in dq.check_results) passes on a synced lake
  and fails when a part is altered, lost or copied.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from kap import lake
from kap.pipeline import step_ingest, step_lake_sync
from kap.quality import validate
from kap.quality.catalogue import load_catalogue
from kap.quality.runner import run_check
from kap.settings import PROJECT_ROOT, Settings
from kap.warehouse import writer

CHECK = next(c for c in load_catalogue(stage="landing") if c.check_id == "landing_lake_matches_log")


def parts(settings: Settings) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in settings.lake.rglob("*") if p.is_file()}


def reconciled(settings: Settings) -> list[dict]:
    with writer(settings) as con:
        return lake.reconcile(con, settings.lake)


def in_step(rows: list[dict]) -> bool:
    return all((r["log_rows"], r["log_checksum"]) == (r["lake_rows"], r["lake_checksum"]) for r in rows)


def alter_one_row(part: Path, column: str) -> None:
    """Rewrite a Parquet part with one value of `column` changed: same rows, same count."""
    con = duckdb.connect()
    try:
        tmp = part.with_name(part.name + ".new")
        con.execute(f"COPY (SELECT * REPLACE (CASE WHEN row_number() OVER () = 1 THEN {column} || '-x' "
                    f"ELSE {column} END AS {column}) FROM read_parquet('{part}', hive_partitioning = false)) "
                    f"TO '{tmp}' (FORMAT parquet)")
    finally:
        con.close()
    os.replace(tmp, part)


@pytest.fixture
def ingested(tmp_settings, small_landing) -> Settings:
    step_ingest(small_landing, tmp_settings, run_id="lake-1")
    return tmp_settings


def test_one_part_per_commit_unit_and_a_rerun_writes_nothing(ingested, small_landing):
    with writer(ingested) as con:
        files = con.execute("SELECT count(*) FROM raw.ingest_files").fetchone()[0]
        units = con.execute("SELECT count(*) FROM (SELECT DISTINCT file_id, ingested_at FROM raw.events)").fetchone()[0]
    written = parts(ingested)
    assert len(list((ingested.lake / "ingest_files").rglob("part-*.parquet"))) == files
    assert len(list((ingested.lake / "events").rglob("part-*.parquet"))) == units
    assert {p.relative_to(ingested.lake).parts[1].split("=")[0] for p in written} >= {"source", "recorded_date"}
    assert in_step(reconciled(ingested))

    step_ingest(small_landing, ingested, run_id="lake-2")           # nothing new in the landing folder
    assert step_lake_sync(ingested) == {t: 0 for t in lake.TABLE_NAMES}
    again = parts(ingested)
    new = set(again) - set(written)
    assert all("knowledge_cutoffs" in str(p) for p in new), "only the second run's cutoff row is new"
    assert {p: again[p] for p in written} == written, "no part rewritten"
    assert in_step(reconciled(ingested))


def test_a_lost_lake_is_written_again_from_the_log(ingested):
    before = reconciled(ingested)
    for part in list(ingested.lake.rglob("part-*.parquet"))[::3]:
        part.unlink()
    assert not in_step(reconciled(ingested))
    step_lake_sync(ingested)
    assert reconciled(ingested) == before


def _kap(home: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_CRASH")}
    env["KAP_HOME"] = str(home)
    if crash_at:
        env["KAP_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "kap.cli", *args], cwd=PROJECT_ROOT, env=env, text=True,
                          capture_output=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", ["lake.before_rename", "lake.between_parts"])
def test_a_crash_between_the_commit_and_the_lake_loses_and_duplicates_nothing(tmp_settings, small_landing,
                                                                                crash_at):
    """Order: the ingest commits to DuckDB, then the lake is written. Killed at `crash_at`, the log
    is complete and the lake behind (a hidden temporary part at most); the next run, with nothing
    new to ingest, writes the missing parts and removes the temporary one."""
    killed = _kap(tmp_settings.home, "ingest", str(small_landing), crash_at=crash_at)
    assert killed.returncode == -9, killed.stderr[-2000:]
    behind = reconciled(tmp_settings)
    assert not in_step(behind)
    assert all(r["lake_rows"] <= r["log_rows"] for r in behind)
    leftovers = list(tmp_settings.lake.rglob(".part-*"))
    assert bool(leftovers) == (crash_at == "lake.before_rename")

    rerun = _kap(tmp_settings.home, "ingest", str(small_landing))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = reconciled(tmp_settings)
    assert in_step(after)
    assert [r["log_rows"] for r in after][:3] == [r["log_rows"] for r in behind][:3], \
        "the re-run ingested nothing (it records its own knowledge cutoff)"
    assert not list(tmp_settings.lake.rglob(".part-*"))
    with writer(tmp_settings) as con:      # no event twice in the lake
        events = lake.lake_relation(tmp_settings.lake, lake.TABLES[0])
        assert con.execute(f"SELECT count(*) - count(DISTINCT event_id) FROM {events}").fetchone()[0] == 0


def test_the_lake_check_is_a_landing_result_and_passes_on_a_synced_lake(ingested):
    outcome = validate(ingested, "landing", "lake-1")
    (result,) = [r for r in outcome.results if r.check_id == CHECK.check_id]
    assert (result.status, result.rows_checked) == ("passed", len(lake.TABLES))
    con = duckdb.connect(str(ingested.warehouse), read_only=True)
    try:
        stored = con.execute("SELECT status FROM dq.check_results WHERE run_id = 'lake-1' AND check_id = ?",
                             [CHECK.check_id]).fetchall()
    finally:
        con.close()
    assert stored == [("passed",)]


def _check_after(settings: Settings, tamper) -> tuple[str, list[str]]:
    tamper(settings.lake)
    with writer(settings) as con:
        lake.stage_check(con, settings.lake)
        result = run_check(con, CHECK, "lake-1", None, {CHECK.target: "kap_lake_reconciliation"})
    return result.status, result.failing_keys_sample


def _first(root: Path, table: str) -> Path:
    return sorted((root / table).rglob("part-*.parquet"))[0]


@pytest.mark.parametrize("tamper, table", [
    (lambda root: alter_one_row(_first(root, "events"), "payload"), "events"),
    (lambda root: _first(root, "quarantine").unlink(), "quarantine"),
    (lambda root: (lambda p: p.with_name("part-copy.parquet").write_bytes(p.read_bytes()))(_first(root, "ingest_files")),
     "ingest_files"),
], ids=["altered", "lost", "copied"])
def test_the_lake_check_fails_on_tampering(ingested, tamper, table):
    status, keys = _check_after(ingested, tamper)
    assert (status, keys) == ("failed", [table])
    with pytest.raises(lake.LakeMismatch, match=table):
        with writer(ingested) as con:
            lake.require_match(con, ingested.lake)


def _lake_result(settings: Settings, run_id: str, full_checks: bool = False):
    outcome = validate(settings, "landing", run_id, full_checks=full_checks)
    (result,) = [r for r in outcome.results if r.check_id == CHECK.check_id]
    return result


def _parts_of(root: Path, source: str) -> list[Path]:
    return sorted((root / "events" / f"source={source}").rglob("part-*.parquet"))


def test_a_night_compares_every_count_and_the_checksums_since_the_last_pass(tmp_settings, small_landing):
    """A night's lake check: the row counts of every table (a part lost anywhere fails it), the
    checksums of the rows committed since the start of the last passing lake check; the full
    checks compare every checksum. A failure keeps that start, so the next night fails again."""
    step_ingest(small_landing, tmp_settings, run_id="lake-1", sources=["ehr"])
    first = _lake_result(tmp_settings, "lake-1")
    assert first.status == "passed" and not first.detail          # no earlier pass: every row
    old_part = _parts_of(tmp_settings.lake, "ehr")[0]
    alter_one_row(old_part, "payload")                             # compared at that pass; same count

    step_ingest(small_landing, tmp_settings, run_id="lake-2", sources=["dosing", "notes"])
    new_part = _parts_of(tmp_settings.lake, "dosing")[0]           # committed after the pass
    alter_one_row(new_part, "payload")
    assert _lake_result(tmp_settings, "lake-2").status == "failed"
    assert _lake_result(tmp_settings, "lake-3").status == "failed", "the window stays at the last pass"

    new_part.unlink()                                              # written again from the log
    step_lake_sync(tmp_settings)
    night = _lake_result(tmp_settings, "lake-4")
    assert night.status == "passed" and night.detail.startswith("read for the night"), night
    assert _lake_result(tmp_settings, "lake-4-full", full_checks=True).status == "failed"

    old_part.unlink()                                              # a lost part: the count differs
    result = _lake_result(tmp_settings, "lake-5")
    assert (result.status, result.failing_keys_sample) == ("failed", ["events"])


def test_a_window_after_every_commit_compares_the_counts_only(ingested):
    """reconcile(since=...) counts every row and sums the checksums of the rows after `since`
    only: with a time after every commit, those sums are 0 on both sides."""
    import datetime as dt

    with writer(ingested) as con:
        whole = lake.reconcile(con, ingested.lake)
        window = lake.reconcile(con, ingested.lake, since=dt.datetime(2999, 1, 1))
    assert in_step(whole)
    assert [(r["log_rows"], r["lake_rows"]) for r in whole] == [(r["log_rows"], r["lake_rows"]) for r in window]
    assert all(r["log_checksum"] == r["lake_checksum"] == "0" for r in window)
