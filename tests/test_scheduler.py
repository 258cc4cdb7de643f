"""kap_nightly under a real Airflow scheduler (LocalExecutor), as `make ui` runs it.

`kap airflow standalone` starts the scheduler, DAG processor, API server and triggerer in a
KAP_HOME of its own, on loopback and free ports, launched from a PATH without this environment's
bin/ (as from a shell that never activated the venv). The tests drive it over the REST API: one
night that publishes, one with nothing new that short-circuits, one with a critical data fault
that fails without retry and leaves analytics.duckdb as it was. The first night is the one the
scheduler creates itself when the DAG is unpaused (catchup is off, so only the latest 02:00);
the next two are triggered, since the cron would fire only at the next 02:00. Either way the
scheduler queues every task and the LocalExecutor runs each in its own task process.
"""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

from kap.orchestration.standalone import StandaloneAirflow
from kap.settings import Settings
from test_dags import NEVER_EMPTY, PUBLISHED_TABLES, _sha256, _tables

pytestmark = [pytest.mark.slow, pytest.mark.scheduler]

DAG_ID = "kap_nightly"


def _drop_dosing_csv_without(landing: Path, column: str) -> Path:
    """A new dosing export whose header lacks a required column (a critical landing fault)."""
    with (landing / "dosing" / "dosing_log.csv").open(newline="") as src:
        rows = list(csv.DictReader(src))
    folder = landing / "dosing" / "2025-03-09"
    folder.mkdir(parents=True)
    fields = [f for f in rows[0] if f != column]
    out = folder / "dosing_log_2025-03-09.csv"
    with out.open("w", newline="") as dst:
        writer = csv.DictWriter(dst, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows[:5])
    return out


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory, small_landing):
    """Airflow standalone on a KAP_HOME whose landing folder is a copy of the small clinic."""
    home = Settings(home=(tmp_path_factory.mktemp("scheduled") / "kap_home").resolve()).ensure_dirs()
    shutil.copytree(small_landing, home.landing)
    airflow = StandaloneAirflow(home, parallelism=2, extra_env={"KAP_RETRY_DELAY_SECONDS": "1"})
    with airflow:
        airflow.wait_for_dag(DAG_ID)
        airflow.unpause(DAG_ID)
        yield airflow, home
    # only the process group this fixture started, and all of it, is gone
    with pytest.raises(ProcessLookupError):
        os.killpg(airflow.started_pgid, 0)


@pytest.fixture(scope="module")
def first_night(scheduler):
    """The run the scheduler starts by itself when kap_nightly is unpaused (today's 02:00)."""
    airflow, home = scheduler
    return airflow.finished_run(DAG_ID, airflow.scheduled_run_id(DAG_ID), timeout=1800)


def test_the_scheduler_runs_the_nightly_to_a_published_analytics_file(scheduler, first_night):
    airflow, home = scheduler
    assert first_night.run_id.startswith("scheduled__")
    assert first_night.state == "success", (first_night.states, airflow.log_tail())
    assert set(first_night.states.values()) == {"success"}, first_night.states
    assert {"discover_new_files", "ingest_ehr", "validate_landing", "dbt_build.marts",
            "validate_marts", "publish_analytics", "write_run_report"} <= set(first_night.states)
    tables = _tables(home.analytics)
    assert PUBLISHED_TABLES <= set(tables)
    empty = {name for name in NEVER_EMPTY if tables[name] == 0}
    assert not empty, f"empty marts in analytics.duckdb: {empty}"
    print(f"kap_nightly under the scheduler: {first_night.seconds:.1f} s "
          f"({len(first_night.task_instances)} task instances)")


def test_a_night_with_nothing_new_short_circuits(scheduler, first_night):
    airflow, home = scheduler
    assert first_night.state == "success"
    before = (_sha256(home.analytics), home.analytics.stat().st_mtime_ns)

    night = airflow.run(DAG_ID, timeout=600)

    states = dict(night.states)
    assert night.state == "success", states
    assert states.pop("discover_new_files") == "success"
    assert set(states.values()) == {"skipped"}, states
    assert (_sha256(home.analytics), home.analytics.stat().st_mtime_ns) == before


def test_a_critical_fault_fails_the_night_without_retry_and_keeps_analytics(scheduler, first_night):
    airflow, home = scheduler
    assert first_night.state == "success"
    before = _sha256(home.analytics)
    _drop_dosing_csv_without(home.landing, "dose_mg")

    night = airflow.run(DAG_ID, timeout=900)

    states = night.states
    assert night.state == "failed", states
    assert states["ingest_dosing"] == "success"          # the file is rejected, the rest goes on
    assert states["validate_landing"] == "failed"
    assert night.tries("validate_landing") == 1          # no retry: a retry cannot fix the data
    for task_id in ("dbt_build.staging", "validate_marts", "publish_analytics"):
        assert states[task_id] == "upstream_failed", (task_id, states)
    assert _sha256(home.analytics) == before
    assert not list(home.home.glob("analytics.duckdb.tmp-*"))
