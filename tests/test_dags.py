"""The Airflow DAGs: they import cleanly and fast, follow the house rules, and run end to end.

conftest.py configures Airflow (AIRFLOW_HOME in a throwaway KAP_HOME) before airflow is imported.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from kap.orchestration import environment as airflow_env, tasks as orchestration
from kap.settings import DAGS_DIR, PROJECT_ROOT, Settings

DAG_IDS = {"kap_nightly", "kap_replay"}
PUBLISHED_TABLES = {
    "care_pathways", "pathway_transitions", "dosing_sessions", "therapy_sessions", "assessments",
    "patient_outcomes", "adherence_patient", "adherence_weekly", "dosing_safety", "clinic_daily",
    "dq_results",
}
# Marts a 40-patient, 60-day clinic always fills.
NEVER_EMPTY = {"care_pathways", "dosing_sessions", "therapy_sessions", "assessments", "clinic_daily",
               "dq_results"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tables(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main'").fetchall()]
        return {name: con.execute(f'select count(*) from "{name}"').fetchone()[0] for name in names}
    finally:
        con.close()


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.fixture(scope="module")
def dagbag(prepared_home: Settings):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


# --- import and house rules ------------------------------------------------------------------

def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert DAG_IDS <= set(dagbag.dag_ids)


def test_parsing_the_dags_does_no_heavy_work(prepared_home):
    # The DAG processor imports dags/ on every parse: no GX, dbt run, plotting or DuckDB work at
    # import time (bench/run_bench.py measures how long the import takes).
    code = ("import sys, runpy, pathlib\n"
            "for f in sorted(pathlib.Path('dags').glob('*.py')): runpy.run_path(str(f))\n"
            "heavy = [m for m in ('great_expectations', 'dbt.cli.main', 'matplotlib', 'pandas') if m in sys.modules]\n"
            "print('HEAVY=' + ','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         timeout=120, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-3000:]
    marker = [line for line in out.stdout.splitlines() if line.startswith("HEAVY=")]
    assert marker == ["HEAVY="], f"imported at parse time: {marker}"


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_every_dag_is_tagged_documented_single_run_and_retried(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert "kap" in dag.tags
    assert dag.doc_md and dag_id in dag.doc_md
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    for task in dag.tasks:
        assert task.retries >= 2, task.task_id
        assert task.retry_exponential_backoff > 1, task.task_id
        assert task.execution_timeout is not None, task.task_id


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_every_warehouse_task_runs_in_the_one_slot_pool(dagbag, dag_id):
    # every task of both DAGs opens warehouse.duckdb (discovery reads raw.ingest_files)
    for task in dagbag.dags[dag_id].tasks:
        assert task.pool == airflow_env.POOL, task.task_id
        assert task.pool_slots == 1, task.task_id


def test_nightly_runs_daily_at_a_configurable_local_time(dagbag):
    dag = dagbag.dags["kap_nightly"]
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"
    assert dag.timetable.expression == os.environ.get("KAP_NIGHTLY_CRON", orchestration.DEFAULT_CRON)
    timezone = dag.timetable.timezone
    assert getattr(timezone, "name", timezone) == os.environ.get("KAP_TIMEZONE", "UTC")


def test_nightly_builds_dbt_one_task_per_layer_between_the_checks(dagbag):
    dag = dagbag.dags["kap_nightly"]
    layers = [f"dbt_build.{layer}" for layer in orchestration.DBT_LAYERS]
    assert layers == ["dbt_build.staging", "dbt_build.intermediate", "dbt_build.marts"]
    assert {t.task_id for t in dag.tasks if t.task_id.startswith("dbt_build.")} == set(layers)
    # every model of the dbt project belongs to exactly one layer task
    models = sorted(p.parent.name for p in (PROJECT_ROOT / "dbt_project" / "models").glob("*/*.sql"))
    assert set(models) == set(orchestration.DBT_LAYERS)
    # one ingest task per source; the EHR first, since dosing logs and notes name patients by MRN
    assert dag.task_dict["discover_new_files"].downstream_task_ids == {"ingest_ehr"}
    assert dag.task_dict["ingest_ehr"].downstream_task_ids == {"ingest_dosing", "ingest_notes"}
    for source in ("dosing", "notes"):
        assert dag.task_dict[f"ingest_{source}"].downstream_task_ids == {"validate_landing"}
    chain = ["validate_landing", *layers, "validate_marts", "publish_analytics"]
    for upstream, downstream in zip(chain, chain[1:]):
        assert dag.task_dict[downstream].upstream_task_ids == {upstream}, downstream


def test_dbt_tasks_are_per_layer_unless_asked_and_a_wrong_kind_is_named(monkeypatch):
    # KAP_DBT_TASKS=cosmos-model (one task per model, astronomer-cosmos) exists only for
    # bench/dbt_task_options.py; the product's default stays one task per layer.
    from kap.orchestration import cosmos_tasks

    monkeypatch.delenv("KAP_DBT_TASKS", raising=False)
    assert orchestration.dbt_task_kind() == "layer"
    monkeypatch.setenv("KAP_DBT_TASKS", "per-model")
    with pytest.raises(ValueError, match="KAP_DBT_TASKS='per-model': expected one of layer, cosmos-model"):
        orchestration.dbt_task_kind()
    monkeypatch.delenv("KAP_COSMOS_TESTS", raising=False)
    assert cosmos_tasks.option("KAP_COSMOS_TESTS") == "after_each"
    monkeypatch.setenv("KAP_COSMOS_TESTS", "BUILD")
    assert cosmos_tasks.option("KAP_COSMOS_TESTS") == "build"
    monkeypatch.setenv("KAP_COSMOS_INVOCATION", "threads")
    with pytest.raises(ValueError, match="expected one of dbt_runner, subprocess"):
        cosmos_tasks.option("KAP_COSMOS_INVOCATION")


def test_nightly_checks_are_full_once_a_week_in_the_clinic_time_zone(monkeypatch, dagbag):
    import datetime as dt

    from airflow.sdk.exceptions import AirflowFailException

    assert dagbag.dags["kap_nightly"].params["checks"] == "auto"
    monkeypatch.delenv(orchestration.FULL_CHECKS_DAY_ENV, raising=False)
    monkeypatch.setenv("KAP_TIMEZONE", "America/New_York")
    # Monday 2026-11-30 02:30 UTC is still Sunday evening in New York: the default full night
    sunday_in_new_york = dt.datetime(2026, 11, 30, 2, 30, tzinfo=dt.timezone.utc)
    monday = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc)
    assert orchestration.full_checks({}, sunday_in_new_york) is True
    assert orchestration.full_checks({"checks": "auto"}, monday) is False
    assert orchestration.full_checks({"checks": "full"}, monday) is True
    assert orchestration.full_checks({"checks": "nightly"}, sunday_in_new_york) is False
    monkeypatch.setenv(orchestration.FULL_CHECKS_DAY_ENV, "Monday")
    assert orchestration.full_checks({}, monday) is True
    assert orchestration.full_checks({}, sunday_in_new_york) is False
    monkeypatch.setenv(orchestration.FULL_CHECKS_DAY_ENV, "always")
    assert orchestration.full_checks({}, monday) is True
    monkeypatch.setenv(orchestration.FULL_CHECKS_DAY_ENV, "never")
    assert orchestration.full_checks({}, sunday_in_new_york) is False
    monkeypatch.setenv(orchestration.FULL_CHECKS_DAY_ENV, "sundays")
    with pytest.raises(AirflowFailException, match="KAP_FULL_CHECKS_DAY='sundays': expected a weekday name"):
        orchestration.full_checks({}, monday)
    with pytest.raises(AirflowFailException, match="param checks='weekly'"):
        orchestration.full_checks({"checks": "weekly"}, monday)


def test_nightly_landing_defaults_to_kap_home_landing(dagbag, prepared_home):
    assert dagbag.dags["kap_nightly"].params["landing_dir"] == str(prepared_home.landing)


def test_replay_is_manual_with_as_of_and_full_refresh(dagbag):
    dag = dagbag.dags["kap_replay"]
    assert type(dag.timetable).__name__ == "NullTimetable"
    assert dag.params["as_of"] is None
    assert dag.params["full_refresh"] is False


def test_airflow_environment_lives_in_kap_home(tmp_settings):
    env = airflow_env.airflow_environ(tmp_settings)
    assert Path(env["AIRFLOW_HOME"]).is_relative_to(tmp_settings.home)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(DAGS_DIR)
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    # task processes must reach the execution API where the API server really listens
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}/execution/"
    assert env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "False"
    assert env["KAP_HOME"] == str(tmp_settings.home)


def test_airflow_processes_find_this_environments_airflow_first_on_path(tmp_settings, monkeypatch):
    # `airflow standalone` starts `airflow scheduler` etc. by name: from a shell without the venv
    # on PATH, `.venv/bin/kap airflow standalone` must still start this environment's airflow
    # (tests/test_scheduler.py starts it that way)
    venv_bin = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", os.pathsep.join(["/usr/bin", venv_bin, "/bin"]))
    path = airflow_env.airflow_environ(tmp_settings)["PATH"].split(os.pathsep)
    assert path == [venv_bin, "/usr/bin", "/bin"]
    assert (Path(path[0]) / "airflow").exists()


def test_prepare_is_quick_the_second_time_and_creates_the_pool(prepared_home):
    from airflow.models.pool import Pool

    started = time.monotonic()
    airflow_env.prepare(prepared_home)
    assert time.monotonic() - started < 1.0
    assert Pool.get_pool(airflow_env.POOL).slots == 1


def test_as_of_is_normalised_like_the_cli():
    assert orchestration.normalize_as_of("2025-06-01T00:00:00") == "2025-06-01 00:00:00"
    assert orchestration.normalize_as_of("2025-06-01T02:00:00+02:00") == "2025-06-01 00:00:00"
    assert orchestration.normalize_as_of("") is None
    assert orchestration.normalize_as_of(None) is None
    with pytest.raises(ValueError):
        orchestration.normalize_as_of("last tuesday")


def test_a_failed_critical_check_fails_the_task_without_retry(monkeypatch, tmp_settings):
    from airflow.sdk.exceptions import AirflowFailException

    from kap import pipeline
    from kap.quality import CriticalCheckFailed
    from kap.quality import ValidationOutcome

    def failing(settings, stage, run_id, as_of=None, full_checks=False):
        raise CriticalCheckFailed(ValidationOutcome(run_id, stage, "failed"))

    monkeypatch.setenv("KAP_HOME", str(tmp_settings.home))
    monkeypatch.setattr(pipeline, "step_validate", failing)
    with pytest.raises(AirflowFailException, match="critical"):
        orchestration.validate(stage="marts", run_id="test")


def test_the_landing_checks_read_every_record_on_the_full_checks_night(monkeypatch, tmp_settings):
    from kap import pipeline
    from kap.quality import ValidationOutcome

    seen = []

    def recording(settings, stage, run_id, as_of=None, full_checks=False):
        seen.append(full_checks)
        return ValidationOutcome(run_id, stage, "passed")

    monkeypatch.setenv("KAP_HOME", str(tmp_settings.home))
    monkeypatch.setenv("KAP_FULL_CHECKS_DAY", "sunday")
    monkeypatch.setenv("KAP_TIMEZONE", "UTC")
    monkeypatch.setattr(pipeline, "step_validate", recording)
    sunday, monday = dt.datetime(2026, 11, 29, 3, tzinfo=dt.timezone.utc), dt.datetime(2026, 11, 30, 3, tzinfo=dt.timezone.utc)
    orchestration.validate(stage="landing", run_id="a", logical_date=sunday)
    orchestration.validate(stage="landing", run_id="b", logical_date=monday)
    orchestration.validate(stage="landing", run_id="c", params={"checks": "full"}, logical_date=monday)
    orchestration.validate(stage="landing", run_id="d", params={"checks": "nightly"}, logical_date=sunday)
    assert seen == [True, False, True, False]


# --- end to end through Airflow ----------------------------------------------------------------

@pytest.fixture(scope="module")
def nightly_run(dagbag, prepared_home, small_landing):
    """kap_nightly once with dag.test() on the small clinic; (DagRun, seconds)."""
    started = time.monotonic()
    dag_run = dagbag.dags["kap_nightly"].test(run_conf={"landing_dir": str(small_landing)})
    return dag_run, time.monotonic() - started


@pytest.mark.slow
def test_nightly_publishes_non_empty_marts(nightly_run, prepared_home):
    dag_run, seconds = nightly_run
    print(f"kap_nightly dag.test(): {seconds:.1f} s")
    assert str(dag_run.state) == "success", _states(dag_run)
    assert set(_states(dag_run).values()) == {"success"}
    tables = _tables(prepared_home.analytics)
    assert PUBLISHED_TABLES <= set(tables)
    empty = {name for name in NEVER_EMPTY if tables[name] == 0}
    assert not empty, f"empty marts in analytics.duckdb: {empty}"


@pytest.mark.slow
def test_world_readable_files_after_a_nightly_dag_run_are_owner_only(nightly_run, prepared_home):
    from support.modes import wrong_modes

    assert str(nightly_run[0].state) == "success", _states(nightly_run[0])
    home = prepared_home.home
    for must in ("warehouse.duckdb", "analytics.duckdb", "reports", "dq", "airflow/airflow.db", "airflow/logs"):
        assert (home / must).exists(), must
    assert wrong_modes(home, prepared_home.analytics_mode) == {}


@pytest.mark.slow
def test_nightly_with_nothing_new_skips_and_keeps_analytics(nightly_run, dagbag, prepared_home, small_landing):
    assert str(nightly_run[0].state) == "success"
    before = _sha256(prepared_home.analytics)
    dag_run = dagbag.dags["kap_nightly"].test(run_conf={"landing_dir": str(small_landing)})
    states = _states(dag_run)
    assert states.pop("discover_new_files") == "success"
    assert set(states.values()) == {"skipped"}
    assert _sha256(prepared_home.analytics) == before


@pytest.mark.slow
def test_replay_as_of_leaves_current_analytics_untouched(nightly_run, dagbag, prepared_home):
    from kap.publish import as_of_target

    assert str(nightly_run[0].state) == "success"
    current = prepared_home.analytics
    before = (_sha256(current), current.stat().st_mtime_ns)
    as_of = "2025-02-01T00:00:00"
    as_of_file = as_of_target(prepared_home, orchestration.normalize_as_of(as_of))
    assert as_of_file != current and not as_of_file.exists()

    dag_run = dagbag.dags["kap_replay"].test(run_conf={"as_of": as_of, "full_refresh": True})

    assert str(dag_run.state) == "success", _states(dag_run)
    assert (_sha256(current), current.stat().st_mtime_ns) == before
    assert PUBLISHED_TABLES <= set(_tables(as_of_file))


@pytest.mark.slow
def test_critical_failure_stops_the_nightly_before_publish(nightly_run, dagbag, prepared_home,
                                                          small_landing, monkeypatch):
    """Only validate_marts really runs here (the rest is marked successful) and it fails."""
    from kap import pipeline
    from kap.quality import CriticalCheckFailed
    from kap.quality import ValidationOutcome

    def failing(settings, stage, run_id, as_of=None, full_checks=False):
        raise CriticalCheckFailed(ValidationOutcome(run_id, stage, "failed"))

    monkeypatch.setattr(pipeline, "step_validate", failing)
    before = _sha256(prepared_home.analytics)
    dag_run = dagbag.dags["kap_nightly"].test(
        run_conf={"landing_dir": str(small_landing)},
        mark_success_pattern=r"discover_new_files|ingest_\w+|validate_landing|dbt_build\..*")
    states = _states(dag_run)
    assert str(dag_run.state) == "failed"
    assert states["validate_marts"] == "failed"
    assert states["publish_analytics"] == "upstream_failed"
    assert _sha256(prepared_home.analytics) == before
    failed = [ti for ti in dag_run.get_task_instances() if ti.task_id == "validate_marts"]
    assert failed[0].try_number == 1  # AirflowFailException: no retry


@pytest.mark.slow
def test_kap_airflow_runs_the_airflow_cli_with_our_environment(prepared_home):
    env = {**os.environ, "KAP_HOME": str(prepared_home.home)}
    kap = Path(sys.executable).with_name("kap")
    done = subprocess.run([str(kap), "airflow", "dags", "list-import-errors", "-l"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
