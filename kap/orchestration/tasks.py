"""What the Airflow DAGs run: task callables and the dbt task-group factory.

The DAG files in dags/ only declare tasks; the work is here, calling the same step functions as
`kap run` (kap.pipeline). This module imports no Airflow, dbt or GX at import time
(the DAG processor imports it on every parse); each callable imports what it needs.

Every callable takes its inputs as keyword arguments named like Airflow's context keys
(`params`, `run_id`), so a PythonOperator can call it directly and a test can call it without
Airflow. Each one that opens the warehouse holds `writer_lock`, so an Airflow task and a
concurrent `kap run` wait for each other instead of colliding on DuckDB's file lock.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from kap.orchestration.environment import POOL
from kap.settings import Settings

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Scheduling and task defaults (read by the DAG files at parse time).

DEFAULT_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "UTC"

#: How long each kind of task may run before Airflow kills it (and retries it).
TIMEOUTS: dict[str, dt.timedelta] = {
    "discover": dt.timedelta(minutes=10),
    "ingest": dt.timedelta(hours=1),
    "validate": dt.timedelta(minutes=30),
    "dbt_layer": dt.timedelta(hours=1),
    "dbt_model": dt.timedelta(minutes=30),
    "build": dt.timedelta(hours=2),
    "publish": dt.timedelta(minutes=30),
    "report": dt.timedelta(minutes=15),
}


def default_args() -> dict[str, Any]:
    """Task defaults for both DAGs: retried twice with exponential back-off, in the warehouse pool.

    Every task of these DAGs opens the DuckDB warehouse (even discovery reads raw.ingest_files),
    so all of them run in the one-slot pool `kap_warehouse`.
    """
    return {
        "owner": "kap",
        "retries": 2,
        # KAP_RETRY_DELAY_SECONDS: the tests shorten it so a failing run fails in seconds.
        "retry_delay": dt.timedelta(seconds=float(os.environ.get("KAP_RETRY_DELAY_SECONDS", 120))),
        # Airflow 3.3: a multiplier (2.0 = the delay doubles each retry), capped below.
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=30),
        "execution_timeout": dt.timedelta(hours=1),
        "pool": POOL,
        "pool_slots": 1,
    }


def nightly_cron() -> str:
    """Cron expression of kap_nightly: env KAP_NIGHTLY_CRON, default 02:00 every day."""
    return os.environ.get("KAP_NIGHTLY_CRON", DEFAULT_CRON)


def nightly_timezone() -> str:
    """Time zone the nightly cron is read in: env KAP_TIMEZONE (IANA name), default UTC."""
    return os.environ.get("KAP_TIMEZONE", DEFAULT_TIMEZONE)


#: KAP_FULL_CHECKS_DAY: the weekday on which kap_nightly's data tests read every row (its other
#: nights read what changed); "always" or "never" also work.
FULL_CHECKS_DAY_ENV = "KAP_FULL_CHECKS_DAY"
DEFAULT_FULL_CHECKS_DAY = "sunday"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CHECKS_CHOICES = ("auto", "nightly", "full")


def full_checks(params: Mapping[str, Any] | None, when: dt.datetime | None = None) -> bool:
    """Whether this run's dbt data tests read every row (True) or what changed tonight (False).

    Param `checks`: "full", "nightly", or "auto" (the default): full on the weekday
    KAP_FULL_CHECKS_DAY (default sunday) of `when` (the run's logical date, else now) in the
    nightly time zone.
    """
    choice = str((params or {}).get("checks") or "auto").strip().lower()
    if choice not in CHECKS_CHOICES:
        _fail(f"param checks={choice!r}: expected one of {', '.join(CHECKS_CHOICES)}")
    if choice != "auto":
        return choice == "full"
    day = os.environ.get(FULL_CHECKS_DAY_ENV, DEFAULT_FULL_CHECKS_DAY).strip().lower() or DEFAULT_FULL_CHECKS_DAY
    if day in ("always", "never"):
        return day == "always"
    if day not in WEEKDAYS:
        _fail(f"{FULL_CHECKS_DAY_ENV}={day!r}: expected a weekday name ({', '.join(WEEKDAYS)}), "
              f"always or never")
    import pendulum

    moment = pendulum.instance(when) if when is not None else pendulum.now("UTC")
    return WEEKDAYS[moment.in_timezone(nightly_timezone()).weekday()] == day


def settings() -> Settings:
    """Settings of the running task: KAP_HOME from the environment (set by `kap airflow`)."""
    return Settings.from_env().ensure_dirs()


def default_landing() -> str:
    """Landing folder used when the run gives none: env KAP_LANDING, else KAP_HOME/landing."""
    return os.environ.get("KAP_LANDING") or str(Settings.from_env().landing)


def resolve_landing(params: Mapping[str, Any] | None) -> Path:
    value = (params or {}).get("landing_dir") or default_landing()
    return Path(value).expanduser().resolve()


def normalize_as_of(value: Any) -> str | None:
    """'2025-06-01T00:00:00' (or with an offset) -> naive UTC 'YYYY-MM-DD HH:MM:SS'; empty -> None.

    Same form as `kap build --as-of`, so the DAGs and the CLI build identical marts.
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", "None", "null")):
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(f"as_of {value!r} is not an ISO timestamp such as 2025-06-01T00:00:00") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return parsed.isoformat(sep=" ")


def _jsonable(value: Any) -> Any:
    """Something XCom can store: dicts/lists/scalars, via to_dict() or dataclasses when offered."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


def _fail(message: str, cause: BaseException | None = None):
    """Fail the task without retries (a retry cannot fix bad data or a bad parameter)."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(message) from cause


# ---------------------------------------------------------------------------------------------
# Discovery: is there anything to do tonight?

@dataclasses.dataclass
class Pending:
    landing: Path
    new_files: list[str]            # landing-relative paths not yet in raw.ingest_files
    known_files: int                # candidate files already ingested (or rejected) before
    unpublished_ingest: bool        # files were ingested after analytics.duckdb was last written

    @property
    def has_work(self) -> bool:
        return bool(self.new_files) or self.unpublished_ingest

    def to_dict(self, sample: int = 20) -> dict[str, Any]:
        """A summary for XCom: counts and the first few new paths (a landing may hold thousands)."""
        return {"landing": str(self.landing), "new_files": len(self.new_files),
                "new_files_sample": self.new_files[:sample], "known_files": self.known_files,
                "unpublished_ingest": self.unpublished_ingest}


def find_pending(landing: Path, settings: Settings) -> Pending:
    """Landing files the event log has not seen (by file_id = sha256), and unpublished ingests.

    The second case covers a run that ingested files but failed before publishing: the next
    night rebuilds and publishes even when no new file arrived.
    """
    from ingest import landing as landing_files
    from kap.warehouse import connect, writer_lock

    found = landing_files.discover(landing)
    with writer_lock(settings):
        known_ids: set[str] = set()
        last_ingest: dt.datetime | None = None
        if settings.warehouse.exists():
            # Read-write on purpose, under the lock: in `airflow dags test` every task runs in one
            # process, where dbt-duckdb keeps its read-write handle open after the dbt tasks, and
            # DuckDB refuses a read-only connection beside it ("different configuration").
            con = connect(settings)
            try:
                has_table = con.execute(
                    "select count(*) from information_schema.tables "
                    "where table_schema = 'raw' and table_name = 'ingest_files'").fetchone()[0]
                if has_table:
                    known_ids = {row[0] for row in con.execute("select file_id from raw.ingest_files").fetchall()}
                    last_ingest = con.execute("select max(ingested_at) from raw.ingest_files").fetchone()[0]
            finally:
                con.close()
    new: list[str] = []
    for candidate in found.files:
        if candidate.problem:
            file_id = landing_files.path_id(candidate.rel_path)
        else:
            try:
                file_id = landing_files.hash_file(candidate.path).sha256
            except landing_files.UnstableFile:
                new.append(candidate.rel_path)   # still being written: ingest decides what to do
                continue
        if file_id not in known_ids:
            new.append(candidate.rel_path)
    return Pending(landing=landing, new_files=new, known_files=len(found.files) - len(new),
                   unpublished_ingest=_ingested_since_publish(settings, last_ingest))


def _ingested_since_publish(settings: Settings, last_ingest: dt.datetime | None) -> bool:
    if last_ingest is None:
        return False
    if not settings.analytics.exists():
        return True
    if last_ingest.tzinfo is None:   # the warehouse stores naive UTC
        last_ingest = last_ingest.replace(tzinfo=dt.timezone.utc)
    published = dt.datetime.fromtimestamp(settings.analytics.stat().st_mtime, tz=dt.timezone.utc)
    return last_ingest > published


def discover(params: Mapping[str, Any] | None = None, **_: Any) -> dict[str, Any] | None:
    """Short-circuit callable: a summary when there is work, None (skip the rest) when not."""
    landing = resolve_landing(params)
    if not landing.is_dir():
        _fail(f"landing folder {landing} does not exist (param landing_dir, env KAP_LANDING or "
              f"KAP_HOME/landing)")
    pending = find_pending(landing, settings())
    if pending.new_files:
        log.info("%d new landing file(s) in %s (%d already ingested)", len(pending.new_files), landing,
                 pending.known_files)
    elif pending.unpublished_ingest:
        log.info("no new landing file, but the last ingest was never published: rebuilding")
    else:
        log.info("nothing new in %s (%d file(s) already ingested): skipping the run", landing,
                 pending.known_files)
        return None
    return pending.to_dict()


# ---------------------------------------------------------------------------------------------
# The pipeline steps (kap.pipeline), wrapped for Airflow.

def ingest(params: Mapping[str, Any] | None = None, run_id: str = "", source: str | None = None,
           **_: Any) -> Any:
    """Load the landing folder's new files of one source (or all) into raw.events, exactly once per file."""
    from kap.pipeline import new_run_id, step_ingest
    from kap.warehouse import writer_lock

    conf = settings()
    landing = resolve_landing(params)
    with writer_lock(conf):
        summary = step_ingest(landing, conf, run_id or new_run_id(), progress=log.info,
                              sources=[source] if source else None)
    return _jsonable(summary)


def ingest_tasks() -> list[Any]:
    """ingest_ehr, then ingest_dosing and ingest_notes: one task per source, so a bad export shows
    on its own task. The EHR goes first because the other two name patients by MRN.

    Call inside a DAG context; returns [ingest_ehr, [ingest_dosing, ingest_notes]] for `chain`.
    """
    from airflow.providers.standard.operators.python import PythonOperator

    def task(source: str):
        return PythonOperator(task_id=f"ingest_{source}", python_callable=ingest,
                              op_kwargs={"source": source}, execution_timeout=TIMEOUTS["ingest"],
                              doc_md=f"New `{source}/` files of the landing folder into raw.events.")

    return [task("ehr"), [task("dosing"), task("notes")]]


def validate(stage: str, params: Mapping[str, Any] | None = None, run_id: str = "",
             logical_date: dt.datetime | None = None, **_: Any) -> Any:
    """Run the GX checks of a stage; a failed critical check fails the task at once (no retry).
    The checks on the log's current state read what changed tonight, or every record on the
    weekly full-checks night (`full_checks`)."""
    from kap.pipeline import new_run_id, step_validate
    from kap.quality import CriticalCheckFailed
    from kap.warehouse import writer_lock

    as_of = _as_of_param(params)
    conf = settings()
    try:
        with writer_lock(conf):
            outcome = step_validate(conf, stage, run_id or new_run_id(), as_of, full_checks(params, logical_date))
    except CriticalCheckFailed as failure:
        _fail(f"critical data-quality check failed at stage {stage!r}: {failure}. "
              f"Nothing is published; {conf.analytics} keeps the last good snapshot.", failure)
    return _jsonable(outcome)


def build(params: Mapping[str, Any] | None = None, **_: Any) -> dict[str, Any]:
    """Rebuild staging, intermediate and marts with dbt from raw.events (kap_replay): a rebuild,
    so its data tests read every row."""
    from kap.pipeline import step_build
    from kap.warehouse import writer_lock

    as_of = _as_of_param(params)
    full_refresh = _bool((params or {}).get("full_refresh", False))
    conf = settings()
    with writer_lock(conf):
        step_build(conf, as_of=as_of, full_refresh=full_refresh, full_checks=True)
    return {"as_of": as_of, "full_refresh": full_refresh, "full_checks": True}


def publish(params: Mapping[str, Any] | None = None, run_id: str = "", **_: Any) -> str:
    """Publish the marts atomically: analytics.duckdb, or a separate file when as_of is set."""
    from kap.pipeline import new_run_id, step_publish
    from kap.warehouse import writer_lock

    as_of = _as_of_param(params)
    conf = settings()
    with writer_lock(conf):
        path = step_publish(conf, run_id or new_run_id(), as_of)
    log.info("published %s", path)
    return str(path)


def report(run_id: str = "", **_: Any) -> str | None:
    """Write the run report (what came in, what was quarantined, check results)."""
    from kap.pipeline import new_run_id, step_report
    from kap.warehouse import writer_lock

    conf = settings()
    with writer_lock(conf):
        path = step_report(conf, run_id or new_run_id())
    if path:
        log.info("run report: %s", path)
    return str(path) if path else None


def publishing_tasks() -> list[Any]:
    """validate_marts -> publish_analytics -> write_run_report, the tail both DAGs end with.

    Call inside a DAG context; returns the operators in order, for `chain`.
    """
    from airflow.providers.standard.operators.python import PythonOperator

    return [
        PythonOperator(task_id="validate_marts", python_callable=validate, op_kwargs={"stage": "marts"},
                       execution_timeout=TIMEOUTS["validate"]),
        PythonOperator(task_id="publish_analytics", python_callable=publish,
                       execution_timeout=TIMEOUTS["publish"]),
        PythonOperator(task_id="write_run_report", python_callable=report,
                       execution_timeout=TIMEOUTS["report"]),
    ]


def _as_of_param(params: Mapping[str, Any] | None) -> str | None:
    try:
        return normalize_as_of((params or {}).get("as_of"))
    except ValueError as bad:
        _fail(str(bad), bad)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


# ---------------------------------------------------------------------------------------------
# dbt as Airflow tasks: one task per layer of the dbt project (dbt build = its models and tests).

#: The layers of dbt_project/models, in build order; kap_nightly runs one `dbt build` per layer.
DBT_LAYERS = ("staging", "intermediate", "marts")


def layer_selector(layer: str) -> str:
    """The dbt selector of a layer: its models folder; the first layer also loads the seeds
    (reference tables such as monitoring_protocols) that later layers read."""
    return f"path:models/{layer}" + (" path:seeds" if layer == DBT_LAYERS[0] else "")


def build_layer(layer: str, params: Mapping[str, Any] | None = None,
                logical_date: dt.datetime | None = None, **_: Any) -> dict[str, Any]:
    """`dbt build` of one layer (its models, then the data tests whose models are all built).

    The same dbt call as `kap run` (kap.transform.build), restricted to models/<layer>/. A data
    test that spans layers runs with the later layer (indirect selection "buildable"), so each
    test runs once, after every model it reads. A failing model or test fails the task (retried:
    dbt failures include a locked file or a killed process). The staging tests read what changed
    tonight, or every row on the weekly full-checks night (`full_checks`).
    """
    from kap.transform import build as dbt_build
    from kap.warehouse import writer_lock

    if layer not in DBT_LAYERS:
        _fail(f"unknown dbt layer {layer!r}; the layers are {', '.join(DBT_LAYERS)}")
    as_of = _as_of_param(params)
    full = full_checks(params, logical_date)
    conf = settings()
    with writer_lock(conf):
        dbt_build(conf, as_of=as_of, select=layer_selector(layer), indirect_selection="buildable",
                  full_checks=full)
    return {"layer": layer, "as_of": as_of, "checks": "full" if full else "nightly"}


def build_on_spark(params: Mapping[str, Any] | None = None, **_: Any) -> dict[str, Any]:
    """Every layer on the Spark target (KAP_ENGINE=spark), the marts read back (kap.spark.build)."""
    from kap.spark import build as spark_build
    from kap.warehouse import writer_lock

    as_of = _as_of_param(params)
    conf = settings()
    with writer_lock(conf):
        spark_build(conf, as_of=as_of)
    return {"engine": "spark", "as_of": as_of}


#: KAP_DBT_TASKS: how kap_nightly turns the dbt project into Airflow tasks. "layer" (the default)
#: is one task per layer; "cosmos-model" one per model through astronomer-cosmos, an optional
#: extra kept for bench/dbt_task_options.py, which measures both under the scheduler.
DBT_TASK_KINDS = ("layer", "cosmos-model")


def dbt_task_kind() -> str:
    kind = os.environ.get("KAP_DBT_TASKS", "").strip() or DBT_TASK_KINDS[0]
    if kind not in DBT_TASK_KINDS:
        raise ValueError(f"KAP_DBT_TASKS={kind!r}: expected one of {', '.join(DBT_TASK_KINDS)}")
    return kind


def dbt_task_group(group_id: str = "dbt_build"):
    """The task group `dbt_build`: staging -> intermediate -> marts, one `dbt build` per layer.

    Why per layer and not per model: under the scheduler each Airflow task pays a task process,
    a DAG parse and a dbt start-up (several seconds on a busy machine), which for 40 models cost
    minutes more than the models compute (bench/NOTES.md has the per-model options measured).
    A layer task still tells an operator where a night broke (the task log lists the failing
    model or test by name) and a retry redoes one layer. Call it inside a DAG context.
    """
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import TaskGroup, chain

    from kap.settings import engine_from_env

    if engine_from_env() == "spark":
        # One task: a Spark build is a full rebuild of every layer in one SparkSession, whose
        # catalog lives only as long as the task's process (kap/spark.py).
        with TaskGroup(group_id=group_id, tooltip="dbt build on Spark, every layer") as group:
            PythonOperator(task_id="spark", python_callable=build_on_spark,
                           execution_timeout=TIMEOUTS["dbt_layer"] * len(DBT_LAYERS),
                           doc_md="`dbt build --target spark`: every layer on Spark from the lake, "
                                  "the marts read back into the warehouse.")
        return group
    if dbt_task_kind() == "cosmos-model":
        from kap.orchestration.cosmos_tasks import cosmos_task_group

        return cosmos_task_group(group_id, execution_timeout=TIMEOUTS["dbt_model"])

    with TaskGroup(group_id=group_id, tooltip="dbt build, one task per layer") as group:
        chain(*[
            PythonOperator(task_id=layer, python_callable=build_layer, op_kwargs={"layer": layer},
                           execution_timeout=TIMEOUTS["dbt_layer"],
                           doc_md=f"`dbt build` of `dbt_project/models/{layer}/`: its models and tests.")
            for layer in DBT_LAYERS
        ])
    return group
