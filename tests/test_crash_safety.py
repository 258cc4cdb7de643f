"""Crash safety: SIGKILL `kap run` at distinct points, re-run, compare with an uninterrupted run.

The points are ingest.crashpoints' (armed with env KAP_CRASH_AT in a subprocess). One clinic,
split into two nights: night 1 = the original exports, night 2 = the full landing folder (night 1
plus the re-exports with corrections and amendments). To keep the suite fast the crashes are a
chain on one home, each run getting further than the one before - and each run after a crash is
the re-run of the one before it:

0. night 1: `kap ingest` + `kap publish` -> the previous analytics.duckdb (A0) and event log (R0);
   a copy of this home runs night 2 uninterrupted (the reference, in parallel with the chain);
1. `kap run` killed at ingest.mid_file (first new file's rows inserted, not committed);
2. `kap run` killed at ingest.between_files (first new file committed);
3. `kap run` killed at build.during (ingest done, dbt killed after a few nodes);
4. `kap run` killed at publish.mid_copy (first mart copied into the tmp file);
5. `kap publish` killed at publish.before_replace (tmp file complete, not renamed);
6. `kap run` without a crash point.

After every crash: the process died of SIGKILL, analytics.duckdb is byte-identical to A0, and the
event log is consistent (no event without its raw.ingest_files row, no duplicate event id). After
6: raw.events (count and ids), raw.ingest_files and the published tables equal the reference's,
in spite of the tmp files the killed publishes left behind.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from kap.settings import PROJECT_ROOT, Settings
from kap.generator import generate

from test_idempotency import log_state, published_fingerprints  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.slow

CLINIC = {"patients": 40, "days": 60, "seed": 7, "fault_rate": 0.01}
RUN_TIMEOUT = 300
# compared with the reference: everything but ingested_at (a crash-free run ingests at another time)
RAW_KEYS = ("events", "files", "quarantine", "keys")


def kap(home: Path, *args: str, crash_at: str | None = None, wait: bool = True, **env_extra: str):
    """Run `kap ARGS` in a subprocess on HOME, optionally armed with a crash point."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_CRASH")}
    env.update(KAP_HOME=str(home), **env_extra)
    if crash_at:
        env["KAP_CRASH_AT"] = crash_at
    cmd = [sys.executable, "-m", "kap.cli", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, text=True, capture_output=True,
                          timeout=RUN_TIMEOUT)


def newest_log(home: Path) -> str:
    """The log file of the latest `kap` command on HOME (KAP_HOME/logs/<run id>.log)."""
    logs = sorted((home / "logs").glob("*.log"), key=lambda p: p.stat().st_mtime)
    return logs[-1].read_text() if logs else ""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raw_state(home: Path) -> dict:
    state = log_state(Settings(home=home))
    return {k: state[k] for k in RAW_KEYS}


def consistency(home: Path) -> dict:
    """Exactly-once invariants of the event log: each file's events all there or none."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return {
            "orphan_events": con.execute(
                "SELECT count(*) FROM raw.events e ANTI JOIN raw.ingest_files f USING (file_id)").fetchone()[0],
            "duplicate_ids": con.execute(
                "SELECT count(*) - count(DISTINCT event_id) FROM raw.events").fetchone()[0],
            "events_vs_files": con.execute(
                "SELECT (SELECT count(*) FROM raw.events) - (SELECT coalesce(sum(events_added), 0) "
                "FROM raw.ingest_files)").fetchone()[0],
        }
    finally:
        con.close()


CONSISTENT = {"orphan_events": 0, "duplicate_ids": 0, "events_vs_files": 0}


def _split_nights(full: Path, night1: Path) -> None:
    """Night 1 = the original exports; the re-exports (*.001.*, *amendments*) come on night 2."""
    for path in full.rglob("*"):
        if path.is_file() and ".001." not in path.name and "amendments" not in path.name:
            dest = night1 / path.relative_to(full)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)


def _check(proc, what: str, rc: int = 0) -> None:
    assert proc.returncode == rc, f"{what}: rc {proc.returncode}, wanted {rc}\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    base = tmp_path_factory.mktemp("crash")
    full, night1 = base / "landing", base / "night1"
    generate(full, **CLINIC)
    _split_nights(full, night1)
    home, ref_home = base / "home", base / "ref_home"

    _check(kap(home, "ingest", str(night1)), "night 1 ingest")
    _check(kap(home, "publish"), "night 1 publish")
    shutil.copytree(home, ref_home)
    analytics = home / "analytics.duckdb"
    out = {"home": home, "ref_home": ref_home, "a0": sha256(analytics), "r0": raw_state(home),
           "r0_consistency": consistency(home), "steps": {}}

    reference = kap(ref_home, "run", str(full), wait=False)   # uninterrupted night 2, in parallel
    try:
        for point, args in (("ingest.mid_file", ("run", str(full))),
                            ("ingest.between_files", ("run", str(full))),
                            ("build.during", ("run", str(full))),
                            ("publish.mid_copy", ("run", str(full))),
                            ("publish.before_replace", ("publish",))):
            proc = kap(home, *args, crash_at=point)
            out["steps"][point] = {
                "rc": proc.returncode, "stderr": proc.stderr, "stdout": proc.stdout, "log": newest_log(home),
                "analytics": sha256(analytics),
                "raw": raw_state(home), "consistency": consistency(home),
                "leftovers": tmp_databases(home),
            }
        final = kap(home, "run", str(full))
    finally:
        ref_out, ref_err = reference.communicate(timeout=RUN_TIMEOUT)
    _check(subprocess.CompletedProcess(reference.args, reference.returncode, ref_out, ref_err), "reference run")
    out["final"] = {"rc": final.returncode, "stderr": final.stderr, "analytics": sha256(analytics),
                    "leftovers": tmp_databases(home),
                    "raw": raw_state(home), "consistency": consistency(home),
                    "published": published_fingerprints(Settings(home=home))}
    out["ref"] = {"raw": raw_state(ref_home), "published": published_fingerprints(Settings(home=ref_home))}
    return out


def tmp_databases(home: Path) -> list[str]:
    """Half-published databases a killed publish left (their .wal files aside)."""
    return sorted(p.name for p in home.glob("analytics.duckdb.tmp-*") if not p.name.endswith(".wal"))


@pytest.mark.parametrize("point", ["ingest.mid_file", "ingest.between_files", "build.during",
                                   "publish.mid_copy", "publish.before_replace"])
def test_killed_run_keeps_previous_analytics_and_a_consistent_log(chain, point):
    step = chain["steps"][point]
    assert step["rc"] == -signal.SIGKILL, f"{point} was not reached:\n{step['stderr'][-3000:]}"
    assert step["analytics"] == chain["a0"], "analytics.duckdb changed before a successful publish"
    assert step["consistency"] == CONSISTENT


def test_killed_mid_file_leaves_nothing_of_the_file(chain):
    assert chain["steps"]["ingest.mid_file"]["raw"] == chain["r0"]


def test_killed_between_files_keeps_exactly_the_committed_file(chain):
    r0, r1 = chain["r0"], chain["steps"]["ingest.between_files"]["raw"]
    assert r1["files"][0] == r0["files"][0] + 1
    assert r1["events"][0] > r0["events"][0]


def test_killed_during_dbt_after_ingest_finished(chain):
    step = chain["steps"]["build.during"]
    # the run's log file has the detail (dbt's node log included); the console has stage lines
    assert "[3/6] dbt build" in step["log"] and "[4/6]" not in step["log"]
    created = re.findall(r"(\d+) of (\d+) OK created", step["log"])
    assert created, "no dbt model was written before the kill"
    assert "Completed successfully" not in step["log"] and "Done. PASS=" not in step["log"]
    assert step["raw"] == chain["ref"]["raw"], "ingest had finished: the log is night 2's"


def test_killed_publish_leaves_only_its_own_tmp_file_and_the_next_publish_clears_it(chain):
    mid_copy = chain["steps"]["publish.mid_copy"]["leftovers"]
    before_replace = chain["steps"]["publish.before_replace"]["leftovers"]
    assert len(mid_copy) == 1, "publish.mid_copy: no tmp file was being written"
    # the next publish removed the killed one's file before writing (and being killed with) its own
    assert len(before_replace) == 1 and before_replace != mid_copy
    assert chain["final"]["leftovers"] == []


def test_rerun_after_crashes_equals_uninterrupted_run(chain):
    final, ref = chain["final"], chain["ref"]
    _check(subprocess.CompletedProcess([], final["rc"], "", final["stderr"]), "final re-run")
    assert final["analytics"] != chain["a0"], "the successful re-run must publish"
    assert final["consistency"] == CONSISTENT
    assert final["raw"] == ref["raw"]
    diff = {t: (final["published"][t], ref["published"][t]) for t in ref["published"]
            if final["published"][t] != ref["published"][t]}
    assert diff == {}
    assert final["published"]["care_pathways"][0] > 0
