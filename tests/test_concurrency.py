"""Concurrency: one writer at a time, and BI readers are never blocked.

While one `kap run` (A) holds the warehouse writer lock:
- a second `kap run` (B) told to wait 1 s (KAP_LOCK_WAIT_SECONDS=1) is refused with WarehouseBusy's
  message, and A carries on;
- a `kap ingest` (C, the same step a DAG task runs) with the default wait waits for A, then reads
  nothing twice: every file skipped, no event added;
- a reader process opening analytics.duckdb read-only in a loop (the file was published before A
  started) never gets an error, and sees the old snapshot, then the new one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from kap.settings import Settings
from kap.warehouse import WarehouseBusy, writer_lock

from test_crash_safety import CONSISTENT, consistency, kap  # noqa: E402  (tests/ is on sys.path)

READER = textwrap.dedent("""
    import json, sys, time, duckdb
    path, stop = sys.argv[1], sys.argv[2]
    import os
    reads, errors, run_ids = 0, [], []
    while not os.path.exists(stop):
        try:
            con = duckdb.connect(path, read_only=True)
            try:
                rid = con.execute("SELECT min(run_id) FROM publish_runs").fetchone()[0]
                con.execute("SELECT count(*) FROM dq_results").fetchone()
            finally:
                con.close()
            reads += 1
            if not run_ids or run_ids[-1] != rid:
                run_ids.append(rid)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
        time.sleep(0.02)
    print(json.dumps({"reads": reads, "errors": errors[:10], "n_errors": len(errors), "run_ids": run_ids}))
""")


def _wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_lock_wait_seconds_from_env(tmp_settings: Settings, monkeypatch):
    """KAP_LOCK_WAIT_SECONDS bounds the wait; WarehouseBusy names the lock file."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(tmp_settings.lock_file)!r}, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setenv("KAP_LOCK_WAIT_SECONDS", "0.5")
        started = time.monotonic()
        with pytest.raises(WarehouseBusy, match="another kap process"):
            with writer_lock(tmp_settings):
                pass
        assert 0.4 <= time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()
    with writer_lock(tmp_settings):   # free again once the holder is gone
        pass


@pytest.mark.slow
def test_second_writer_waits_or_is_refused_and_readers_never_blocked(small_landing: Path, tmp_path: Path):
    home = tmp_path / "home"
    first = kap(home, "publish")       # a published file from "last night" (no marts yet: cheap)
    assert first.returncode == 0, first.stderr[-2000:]
    analytics = home / "analytics.duckdb"
    stop = tmp_path / "stop-reader"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(analytics), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    a_err = tmp_path / "a.stderr"
    procs = []
    try:
        with open(a_err, "w") as err:
            env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_CRASH")}
            env["KAP_HOME"] = str(home)
            # -v: A's stage log ("[1/6] ingest" once it holds the lock) on its stderr
            a = subprocess.Popen([sys.executable, "-m", "kap.cli", "-v", "run", str(small_landing)],
                                 cwd=Path(__file__).resolve().parent.parent, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=err)
            procs.append(a)
            _wait_for(lambda: "[1/6] ingest" in a_err.read_text() or a.poll() is not None, 120,
                      "run A to take the lock")
            assert a.poll() is None, a_err.read_text()[-2000:]

            # B: refused after its 1 s wait, while A still runs
            b = kap(home, "run", str(small_landing), KAP_LOCK_WAIT_SECONDS="1")
            assert b.returncode == 1, b.stderr[-2000:]
            assert "another kap process is writing" in b.stderr   # WarehouseBusy's message
            assert a.poll() is None, "A finished before B was refused: the test proved nothing"

            # C: waits for A (default wait), then finds nothing new
            c = kap(home, "ingest", "--json", str(small_landing), wait=False)
            procs.append(c)
            time.sleep(3)
            assert a.poll() is None and c.poll() is None, "C must wait while A holds the lock"
            a_out, _ = a.communicate(timeout=300)
            assert a.returncode == 0, a_err.read_text()[-3000:]
            c_out, c_stderr = c.communicate(timeout=120)
            assert c.returncode == 0, c_stderr[-2000:]
            assert "waiting for it to finish" in c_stderr
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        stop.touch()
        r_out, r_err = reader.communicate(timeout=60)

    totals = json.loads(c_out)["totals"]
    assert totals["events_added"] == 0 and totals["files_ingested"] == 0
    assert totals["files_skipped"] > 0
    assert consistency(home) == CONSISTENT

    seen = json.loads(r_out)
    assert seen["n_errors"] == 0, seen["errors"]
    assert seen["reads"] > 50
    assert len(seen["run_ids"]) == 2, f"the reader saw {seen['run_ids']}: wanted the old, then the new snapshot"
    con = duckdb.connect(str(analytics), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM care_pathways").fetchone()[0] > 0
    finally:
        con.close()
