"""kap_replay: rebuild the marts from the event log alone, optionally as known at `as_of`.

A thin declaration: the callables live in kap.orchestration.tasks.
"""
from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param, chain

from kap.orchestration import tasks as orch

DOC = """
### kap_replay

Manual. Rebuilds staging, intermediate and marts from `raw.events` with dbt (`kap build`), checks
the marts, and publishes them.

* `as_of` (optional, ISO timestamp, UTC unless it has an offset, e.g. `2025-06-01T00:00:00`):
  rebuild as the clinic knew it then. The result is published to a **separate file** next to
  `analytics.duckdb`, which stays untouched. Empty: rebuild with everything known and replace
  `analytics.duckdb` (atomically).
* `full_refresh`: rebuild incremental models from the whole event log.

A replay is a rebuild: its dbt data tests read every row (the full checks).

The next `kap_nightly` (or `kap build`) rebuilds the warehouse marts as of now.
"""

with DAG(
    dag_id="kap_replay",
    description="Rebuild the marts from the event log (optionally as of a past moment) and publish",
    doc_md=DOC,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=pendulum.duration(hours=6),
    default_args=orch.default_args(),
    params={
        "as_of": Param(None, type=["null", "string"],
                       description="Knowledge time to rebuild at, e.g. 2025-06-01T00:00:00 (UTC). "
                                   "Empty = everything known."),
        "full_refresh": Param(False, type="boolean",
                              description="Rebuild incremental models from the whole event log."),
    },
    tags=["kap", "replay", "dbt"],
) as dag:
    build = PythonOperator(
        task_id="build_marts", python_callable=orch.build, execution_timeout=orch.TIMEOUTS["build"])
    chain(build, *orch.publishing_tasks())
