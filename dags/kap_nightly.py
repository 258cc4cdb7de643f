"""kap_nightly: new landing files -> event log -> checks -> dbt marts -> checks -> analytics.duckdb.

A thin declaration: the callables live in kap.orchestration.tasks (importable, testable without
Airflow) and call the same step functions as `kap run`.
"""
from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.python import PythonOperator, ShortCircuitOperator
from airflow.sdk import DAG, CronTriggerTimetable, Param, chain

from kap.orchestration import tasks as orch

DOC = """
### kap_nightly

The nightly KAP pipeline, the same steps as `kap run`:

1. **discover_new_files** - compares the landing folder (param `landing_dir`; default env
   `KAP_LANDING`, else `KAP_HOME/landing`) with `raw.ingest_files`; when nothing is new and the
   last ingest was published, the rest of the run is skipped.
2. **ingest_ehr**, then **ingest_dosing** and **ingest_notes** - one task per source (the EHR
   first: the other two name patients by MRN); new files into the append-only event log `raw.events`, exactly once per
   file; rejected records into `raw.quarantine`.
3. **validate_landing** - Great Expectations checks on what was ingested, and on the log's
   current state (on a *nightly* run, below, the records sent tonight and every record with a
   failing version; on a *full* one, every record).
4. **dbt_build** - staging -> intermediate -> marts, one task per layer (`dbt build`: the
   layer's models and their tests; the log names a failing model or test).
   Which checks read what:
   * *nightly* (every night but one): the dbt row tests on the staging views (not null,
     accepted values, expressions) read the rows of the patients whose records arrived since the
     last build; the incremental models are rebuilt for those patients only.
   * *full* (the night that falls on `KAP_FULL_CHECKS_DAY`, default sunday, or param
     `checks` = full): every dbt test reads every row.
   * every night, whatever the choice, whole: uniqueness tests, the dbt tests on the
     intermediate models and marts, and the Great Expectations mart checks; the landing checks
     read the files this run ingested.
5. **validate_marts** - checks on the marts. A failed *critical* check fails the run here, without
   retries: nothing is published and `analytics.duckdb` keeps the last good snapshot.
6. **publish_analytics** - the PHI-free `analytics.duckdb`, replaced atomically.
7. **write_run_report** - `KAP_HOME/reports/`.

Schedule: cron `KAP_NIGHTLY_CRON` (default `0 2 * * *`) in time zone `KAP_TIMEZONE` (default UTC).
Every task runs in the one-slot pool `kap_warehouse`: DuckDB allows one writer.
"""

TZ = orch.nightly_timezone()

with DAG(
    dag_id="kap_nightly",
    description="Landing exports -> event log -> dbt marts -> analytics.duckdb",
    doc_md=DOC,
    schedule=CronTriggerTimetable(orch.nightly_cron(), timezone=TZ),
    start_date=pendulum.datetime(2025, 1, 1, tz=TZ),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=pendulum.duration(hours=6),
    default_args=orch.default_args(),
    params={
        "landing_dir": Param(orch.default_landing(), type="string",
                             description="Landing folder with ehr/, dosing/, notes/ subfolders."),
        "checks": Param("auto", type="string", enum=list(orch.CHECKS_CHOICES),
                        description="dbt data tests: nightly (what changed tonight), full (every "
                                    "row), or auto (full on KAP_FULL_CHECKS_DAY, default sunday)."),
    },
    tags=["kap", "nightly", "dbt", "data-quality"],
) as dag:
    discover = ShortCircuitOperator(
        task_id="discover_new_files", python_callable=orch.discover,
        execution_timeout=orch.TIMEOUTS["discover"],
        doc_md="Skip the run when no landing file is new and the last ingest was published.")
    validate_landing = PythonOperator(
        task_id="validate_landing", python_callable=orch.validate, op_kwargs={"stage": "landing"},
        execution_timeout=orch.TIMEOUTS["validate"])
    dbt_build = orch.dbt_task_group(group_id="dbt_build")
    chain(discover, *orch.ingest_tasks(), validate_landing, dbt_build, *orch.publishing_tasks())
