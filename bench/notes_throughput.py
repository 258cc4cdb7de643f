"""Notes ingest throughput: therapy-note lines per second through `kap ingest` (notes only).

A generated clinic's EHR is ingested first (the notes name their patients by MRN), then the note
files alone are timed: read, parse, validate, tag, write the event log. Best of `--repeat` runs,
each into a fresh KAP_HOME. With --tagging-only it also times the note tagger by itself on the same
texts. Prints one Markdown table row per figure; `make bench` appends them to bench/NOTES.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(landing: Path, work: Path) -> tuple[int, float]:
    from kap.pipeline import step_ingest
    from kap.settings import Settings

    home = Path(tempfile.mkdtemp(dir=work))
    settings = Settings(home=home).ensure_dirs()
    step_ingest(landing, settings, sources=["ehr"])
    started = time.perf_counter()
    summary = step_ingest(landing, settings, sources=["notes"])
    seconds = time.perf_counter() - started
    shutil.rmtree(home, ignore_errors=True)
    return summary.totals["records_read"], seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "kap-notes-bench")
    ap.add_argument("--label", default="this commit")
    ap.add_argument("--tagging-only", action="store_true", help="also time the tagger alone")
    args = ap.parse_args()

    from kap.generator import generate

    args.work.mkdir(parents=True, exist_ok=True)
    landing = args.work / f"landing-{args.patients}x{args.days}"
    if not (landing / "notes").exists():
        generate(landing, patients=args.patients, days=args.days, seed=42)
    runs = [measure(landing, args.work) for _ in range(args.repeat)]
    lines, best = min(runs, key=lambda r: r[1])
    print(f"| {args.label} | notes ingest | {lines:,} notes | {best:.2f} s | {lines / best:,.0f} notes/s |")
    if args.tagging_only:
        from ingest.note_tags import tag_texts

        texts = [json.loads(line).get("text") for f in sorted((landing / "notes").glob("*.jsonl"))
                 for line in f.read_text().splitlines() if line.strip().startswith("{")]
        tag_texts(["warm-up"])
        started = time.perf_counter()
        tag_texts(texts)
        seconds = time.perf_counter() - started
        print(f"| {args.label} | note tagger alone | {len(texts):,} texts | {seconds:.2f} s | "
              f"{len(texts) / seconds:,.0f} texts/s |")


if __name__ == "__main__":
    main()
