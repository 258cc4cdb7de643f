"""Benchmark `kap ingest` against DuckDB's own readers on the same landing files.

    uv run python bench/ingest_bench.py --patients 2000 --days 365
    uv run python bench/ingest_bench.py --landing path/to/landing

It generates a landing folder (kap.generator) unless --landing is given, then in one run:
1. the yardstick: DuckDB's native readers load the same files into tables of a fresh database -
   `read_ndjson_objects` (EHR NDJSON, notes JSONL; ignore_errors) and `read_csv` (dosing CSV,
   all_varchar, ignore_errors);
2. `ingest_landing` into a fresh KAP_HOME (parse, validate, key, quarantine, event log, one
   transaction per file);
and prints records/s, events/s and the ratio native_seconds / ingest_seconds (target >= 0.5).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kap.settings import Settings  # noqa: E402
from ingest.landing import discover  # noqa: E402
from kap.pipeline import step_ingest  # noqa: E402
from kap.warehouse import path_for_sql  # noqa: E402


def native_load(files: list[tuple[str, Path]], db: Path) -> tuple[float, int]:
    """Load every file with DuckDB's own reader into a table; return (seconds, rows)."""
    con = duckdb.connect(str(db))
    rows = 0
    started = time.perf_counter()
    for i, (source, path) in enumerate(files):
        p = path_for_sql(path)
        if source == "dosing":
            sql = f"CREATE TABLE t{i} AS SELECT * FROM read_csv({p}, all_varchar = true, ignore_errors = true)"
        else:
            sql = f"CREATE TABLE t{i} AS SELECT * FROM read_ndjson_objects({p}, ignore_errors = true)"
        try:
            con.execute(sql)
            rows += con.execute(f"SELECT count(*) FROM t{i}").fetchone()[0]
        except duckdb.Error as exc:   # e.g. invalid UTF-8 the native reader refuses
            print(f"  native reader failed on {path.name}: {str(exc).splitlines()[0]}", file=sys.stderr)
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - started
    con.close()
    return seconds, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--landing", type=Path, help="an existing landing folder (else one is generated)")
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--fault-rate", type=float, default=0.01)
    ap.add_argument("--workdir", type=Path, help="where to put generated data and databases (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="kap-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        landing = args.landing
        if landing is None:
            from kap.generator import generate

            landing = work / "landing"
            t = time.perf_counter()
            generate(landing, patients=args.patients, days=args.days, seed=args.seed,
                     fault_rate=args.fault_rate)
            print(f"generated {landing} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        files = [(f.source, f.path) for f in discover(landing).files
                 if f.problem is None and not f.path.name.endswith(".gz")]
        size = sum(p.stat().st_size for _, p in files)

        native_db = work / "native.duckdb"
        native_db.unlink(missing_ok=True)
        native_s, native_rows = native_load(files, native_db)

        home = work / "home"
        shutil.rmtree(home, ignore_errors=True)
        t = time.perf_counter()
        summary = step_ingest(landing, Settings.from_env(home))
        ingest_s = time.perf_counter() - t
        tot = summary.totals
        figures = {
            "files": len(files), "megabytes": round(size / 1e6, 1),
            "native_seconds": round(native_s, 2), "native_rows": native_rows,
            "native_rows_per_s": round(native_rows / native_s),
            "ingest_seconds": round(ingest_s, 2), "records_read": tot["records_read"],
            "events_added": tot["events_added"], "records_quarantined": tot["records_quarantined"],
            "ingest_records_per_s": round(tot["records_read"] / ingest_s),
            "ingest_events_per_s": round(tot["events_added"] / ingest_s),
            "ratio_native_over_ingest": round(native_s / ingest_s, 3),
            "files_failed": tot["files_failed"],
        }
        if args.json:
            print(json.dumps(figures, indent=2))
        else:
            print(f"landing: {figures['files']} files, {figures['megabytes']} MB")
            print(f"DuckDB native readers: {native_rows:,} rows in {native_s:.2f}s = "
                  f"{figures['native_rows_per_s']:,} rows/s")
            print(f"kap ingest:            {tot['records_read']:,} records in {ingest_s:.2f}s = "
                  f"{figures['ingest_records_per_s']:,} records/s, {figures['ingest_events_per_s']:,} events/s "
                  f"({tot['events_added']:,} events, {tot['records_quarantined']:,} quarantined)")
            print(f"ratio (native time / ingest time): {figures['ratio_native_over_ingest']:.2f}x  (target >= 0.5x)")
        return 0 if tot["files_failed"] == 0 else 1
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
