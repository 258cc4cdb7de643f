"""The command line is quiet and clear: `kap run` shows one line per stage and a summary table,
dbt's node log goes to the run's log file (and to the console only with -v), and a failure is one
line saying what failed, what to do and where the log is - a traceback only with -v.

Runs `kap` in a subprocess with pipes (not a terminal), as CI and cron see it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from kap.generator import generate
from kap.settings import PROJECT_ROOT

CLINIC = {"patients": 30, "days": 180, "seed": 3, "fault_rate": 0.01}
MAX_LINES = 20
DBT_NODE_LINE = re.compile(r"\d+ of \d+ (OK|PASS) ")


def kap(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_CRASH")}
    env["KAP_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "kap.cli", *args], cwd=PROJECT_ROOT, env=env, text=True,
                          capture_output=True, timeout=900)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    base = tmp_path_factory.mktemp("cli")
    generate(base / "landing", **CLINIC)
    home = base / "home"
    return home, kap(home, "run", str(base / "landing"))


def test_kap_run_on_a_30_patient_clinic_prints_at_most_20_lines(first_run) -> None:
    home, proc = first_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (proc.stdout + proc.stderr).splitlines()
    assert 6 <= len(lines) <= MAX_LINES, "\n".join(lines)
    # one line per stage, with its counts and elapsed time
    for stage in ("ingest", "check landing", "dbt build", "check marts", "publish", "run report"):
        assert sum(1 for line in proc.stderr.splitlines() if line.startswith(f"✓ {stage}")) == 1, proc.stderr
    assert re.search(r"✓ ingest +\d+ new files, [\d,]+ events, \d+ quarantined.* \d+\.\ds", proc.stderr)
    assert re.search(r"✓ dbt build +(\d+)/\1 nodes", proc.stderr)
    assert "Traceback" not in proc.stderr and not DBT_NODE_LINE.search(proc.stdout + proc.stderr)


def test_kap_run_writes_dbts_node_log_to_the_runs_log_file(first_run) -> None:
    home, proc = first_run
    log_line = [line for line in proc.stdout.splitlines() if line.startswith("log: ")]
    assert len(log_line) == 1
    log_file = Path(log_line[0].removeprefix("log: "))
    assert log_file.parent == home.resolve() / "logs"
    text = log_file.read_text()
    assert DBT_NODE_LINE.search(text), "dbt's node log is not in the run's log file"
    assert "[3/6] dbt build" in text and "Done. PASS=" in text


def test_a_failing_dbt_build_prints_one_clear_line_and_no_traceback(first_run) -> None:
    home, first = first_run
    assert first.returncode == 0
    # damage the warehouse so that dbt's first model cannot read the event log
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("ALTER TABLE raw.events RENAME COLUMN payload TO payload_moved")
    try:
        quiet = kap(home, "build")
        assert quiet.returncode == 1
        assert "Traceback" not in quiet.stderr + quiet.stdout
        last = quiet.stderr.strip().splitlines()[-1]
        assert last.startswith("kap build failed at dbt build: dbt failed: model.kap.stg_raw__current_events")
        assert "payload" in last and "run again" in last
        log_file = Path(last.rsplit("Log: ", 1)[1])
        assert "Traceback" in log_file.read_text()   # the detail is in the log
        assert len((quiet.stdout + quiet.stderr).splitlines()) <= 3

        loud = kap(home, "-v", "build")
        assert loud.returncode == 1
        assert "Traceback" in loud.stderr and "DbtBuildError" in loud.stderr
        assert DBT_NODE_LINE.search(loud.stderr), "-v shows dbt's node log"
    finally:
        with duckdb.connect(str(home / "warehouse.duckdb")) as con:
            con.execute("ALTER TABLE raw.events RENAME COLUMN payload_moved TO payload")
