"""Measure what a decompression bomb costs `kap ingest`: time, peak memory, and the rest of its drop.

    uv run python bench/bomb_bench.py [--compressed-mb 20] [--work /tmp/kap-bomb]

Builds a gzip file of about --compressed-mb MB that expands to about a thousand times that (gzip
members of 1 GiB of blank lines, concatenated: a valid gzip file), puts it first in a copy of the
test fixture drop (`Patient.0.ndjson.gz` sorts before every other file), runs `kap ingest` on it in
a child process with the default limits, and prints the seconds, the child's peak RSS, the bomb's
status and reason, and how many of the other files were ingested.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "ingest" / "landing"
DROP = "ehr/2025-06-01"


def gzip_member_of_blank_lines(mib: int) -> bytes:
    chunk = (b" " * 1023 + b"\n") * 1024
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(comp.compress(chunk) for _ in range(mib)) + comp.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compressed-mb", type=float, default=20)
    ap.add_argument("--work", type=Path, default=Path("/tmp/kap-bomb"))
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    land = a.work / "landing"
    shutil.copytree(FIXTURE, land)
    member = gzip_member_of_blank_lines(1024)
    bomb = land / DROP / "Patient.0.ndjson.gz"
    with open(bomb, "wb") as f:
        while f.tell() < a.compressed_mb * 1e6:
            f.write(member)
    size = bomb.stat().st_size
    env = {**os.environ, "KAP_HOME": str(a.work / "home")}
    for k in ("KAP_MAX_FILE_BYTES", "KAP_MAX_EXPANSION_RATIO", "KAP_MAX_LINE_BYTES", "KAP_MAX_JSON_DEPTH"):
        env.pop(k, None)
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "kap.cli", "ingest", str(land)],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if out.returncode != 0:
        print(out.stderr[-3000:])
        raise SystemExit(f"kap ingest exited {out.returncode}")
    summary = json.loads(out.stdout)
    first = summary["files"][0]
    others = summary["files"][1:]
    print(f"bomb: {size / 1e6:.1f} MB gzip, expands to about {size / len(member):.0f} GiB")
    print(f"kap ingest: {seconds:.1f} s, peak RSS {peak_mb:.0f} MB")
    print(f"first file {first['path']}: {first['status']} ({first['reject_reason']}: {first['detail']})")
    print(f"other files: {sum(f['status'] == 'ingested' for f in others)} of {len(others)} ingested")


if __name__ == "__main__":
    main()
