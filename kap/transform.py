"""Run the dbt project (staging -> intermediate -> marts) in-process on the warehouse.

`build` is what `kap build`, `kap run` and the DAGs call; `parse` writes manifest.json and the
partial-parse state that later builds (one per layer in kap_nightly) start from.

dbt's own console output is off (`--log-level none`): every dbt message goes to the Python logger
`kap.dbt` at INFO instead (errors and warnings too, tagged), so `kap` writes dbt's node log to the
run's log file and shows it only with -v, and an Airflow task log, which records every logger,
keeps it in full. dbt's debug file log stays in KAP_HOME/dbt/logs/dbt.log.

dbt-duckdb opens its own read-write handle on warehouse.duckdb, so the caller must not hold a
DuckDB connection of its own on that file while dbt runs (DuckDB allows one writer). `build` takes
the (re-entrant) writer lock itself, so a caller that already holds it just nests.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ingest import crashpoints
from kap.settings import DBT_PROJECT_DIR, DUCKDB_MEMORY_ENV, DUCKDB_THREADS_ENV, Settings, duckdb_resources
from kap.warehouse import writer_lock

log = logging.getLogger(__name__)
dbt_log = logging.getLogger("kap.dbt")

# on_node(done, total, node_name): called as dbt finishes each node (model, seed, test)
NodeProgress = Callable[[int, int, str], None]

_AS_OF = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?Z?$")
# dbtRunner is not re-entrant, and KAP_WAREHOUSE is process-global: one dbt call at a time.
_dbt_call = threading.Lock()


class DbtBuildError(RuntimeError):
    """dbt finished with errors or failing tests; `failures` names the failing nodes."""

    def __init__(self, message: str, failures: list[str] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


def _vars(as_of: str | None, extra: dict[str, Any] | None = None) -> str:
    if as_of is None:
        return json.dumps({"as_of": None, **(extra or {})})
    text = str(as_of).strip()
    if not _AS_OF.match(text):
        raise ValueError(f"as_of must look like 2025-06-01T00:00:00 (UTC), got {as_of!r}")
    return json.dumps({"as_of": text.rstrip("Z"), **(extra or {})})


#: dbt profile targets (dbt_project/profiles.yml) per engine.
TARGETS = {"duckdb": "dev", "spark": "spark"}


def _common_args(settings: Settings, engine: str = "duckdb") -> list[str]:
    args = [
        "--log-level", "none",
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(settings.dbt_target_dir if engine == "duckdb"
                             else settings.dbt_target_dir.with_name(f"target-{engine}")),
        "--log-path", str(settings.dbt_log_dir),
    ]
    if engine != "duckdb":      # the DuckDB runs keep their arguments (and partial parse) as they were
        args += ["--target", TARGETS[engine]]
    return args


@contextmanager
def _warehouse_env(settings: Settings) -> Iterator[None]:
    """Point the dbt profile at this warehouse, with the DuckDB resources every kap connection
    gets (kap.settings.duckdb_resources), for the duration of one dbt call."""
    resources = duckdb_resources()
    wanted = {"KAP_WAREHOUSE": str(settings.warehouse),
              DUCKDB_MEMORY_ENV: resources["memory_limit"], DUCKDB_THREADS_ENV: resources["threads"]}
    previous = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _log_event(event: Any) -> None:
    """One dbt event -> the `kap.dbt` logger (INFO; dbt's warnings and errors tagged)."""
    info = getattr(event, "info", None)
    level = getattr(info, "level", "")
    text = getattr(info, "msg", "")
    if level == "debug" or not text or not text.strip():
        return
    dbt_log.info("%s%s", "" if level == "info" else f"[{level}] ", text)


def _node_callback(on_node: NodeProgress) -> Callable[[Any], None]:
    """Counts dbt's NodeFinished events; the total comes from the start lines (which carry it)."""
    state = {"done": 0, "total": 0}
    lock = threading.Lock()

    def on_event(event: Any) -> None:
        name = getattr(getattr(event, "info", None), "name", None)
        data = getattr(event, "data", None)
        with lock:
            if name == "LogStartLine":
                state["total"] = max(state["total"], getattr(data, "total", 0))
                return
            if name != "NodeFinished":
                return
            state["done"] += 1
            done, total = state["done"], max(state["total"], state["done"])
        node = getattr(getattr(data, "node_info", None), "node_name", "") or ""
        on_node(done, total, node)
    return on_event


def _invoke(args: list[str], settings: Settings, on_node: NodeProgress | None = None):
    from dbt.cli.main import dbtRunner  # imported lazily: no work at import time (DAG parsing)

    target_dir = Path(args[args.index("--target-path") + 1]) if "--target-path" in args else settings.dbt_target_dir
    target_dir.mkdir(parents=True, exist_ok=True)
    settings.dbt_log_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [_log_event, *crashpoints.dbt_callbacks()]
    if on_node is not None:
        callbacks.append(_node_callback(on_node))
    with _dbt_call, _warehouse_env(settings):
        log.info("dbt %s", " ".join(args))
        try:
            return dbtRunner(callbacks=callbacks).invoke(args)
        finally:
            _release_duckdb()


def _release_duckdb() -> None:
    """Close the DuckDB handle dbt-duckdb caches per process after a dbt call.

    dbt-duckdb keeps its environment (and the read-write handle on warehouse.duckdb) alive in a
    class attribute after `invoke` returns; left open, the next step in this process (checks,
    publish, a read-only connection) fails with "different configuration than existing
    connections", and the file stays locked for other processes.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # adapter not loaded: nothing to release
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if env is not None:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing is best effort; the handle is dropped anyway
                log.debug("closing the dbt-duckdb environment failed", exc_info=True)


def _failures(result) -> list[str]:
    """Names of the nodes that errored or failed (tests at severity error)."""
    failed: list[str] = []
    for node_result in getattr(result.result, "results", None) or []:
        status = str(getattr(node_result, "status", "")).lower()
        if status.endswith(("error", "fail", "runtimeerr")):
            node = getattr(node_result, "node", None)
            name = getattr(node, "unique_id", None) or getattr(node, "name", "?")
            # dbt's message: "Runtime Error in model x (path)" then the cause on the next line
            # (Spark repeats "Runtime Error" on a line of its own before the cause)
            message = [line.strip() for line in (getattr(node_result, "message", None) or "").splitlines()
                       if line.strip() and line.strip() not in ("Runtime Error", "Database Error")][:2]
            failed.append(f"{name}: {status}" + (f" - {': '.join(message)}" if message else ""))
    return failed


def run_dbt(settings: Settings, command: list[str], as_of: str | None = None,
            on_node: NodeProgress | None = None, engine: str = "duckdb",
            extra_vars: dict[str, Any] | None = None) -> object:
    """Run one dbt command (e.g. ["test", "--select", "test_type:unit"]) on the warehouse, or with
    engine "spark" on the Spark target (kap/spark.py sets up what that target reads).

    Raises DbtBuildError naming the failing nodes when dbt does not succeed.
    """
    args = [*command, *_common_args(settings, engine), "--vars", _vars(as_of, extra_vars)]
    with writer_lock(settings):
        result = _invoke(args, settings, on_node)
    if not result.success:
        failures = _failures(result)
        if result.exception is not None and not failures:
            failures = [f"{type(result.exception).__name__}: {result.exception}"]
        detail = "\n  ".join(failures) or "no node failed; see the dbt log"
        raise DbtBuildError(
            f"dbt {command[0]} failed ({len(failures)} failing nodes; log in {settings.dbt_log_dir}):\n  {detail}",
            failures,
        )
    return result.result


def build(settings: Settings, as_of: str | None = None, full_refresh: bool = False,
          select: str | None = None, unit_tests: bool = False,
          indirect_selection: str | None = None, on_node: NodeProgress | None = None,
          full_checks: bool = False) -> None:
    """`dbt build` (models and data tests) on the warehouse, as known at `as_of`: the DuckDB
    engine (kap.spark.build is the Spark one; kap.pipeline.step_build picks by settings.engine).
    as_of: UTC timestamp 'YYYY-MM-DDTHH:MM:SS' (None = everything recorded). It also fixes "now"
    for the as-of rules (dropout), so the same events and as_of give the same marts.
    unit_tests: dbt unit tests check the SQL, not the data, so the nightly build leaves them to
    the test suite (tests/test_dbt_unit_tests.py) unless asked.
    indirect_selection: dbt's --indirect-selection for the tests of a `select` (e.g. "buildable").
    full_checks: the data tests on the staging views read every row. Without it a night's tests
    read the rows that changed since the last build (macros/nightly_tests.sql); a full or as-of
    build reads every row either way.
    """
    if not full_refresh and _marts_from_spark(settings):
        log.info("the marts were built on Spark since the last DuckDB build: this build is a full refresh")
        full_refresh = True
    command = ["build"]
    if not unit_tests:
        command += ["--exclude", "test_type:unit"]
    if full_refresh:
        command.append("--full-refresh")
    if select:
        command += ["--select", select]
    if indirect_selection:
        command += ["--indirect-selection", indirect_selection]
    run_dbt(settings, command, as_of=as_of, on_node=on_node, extra_vars=checks_vars(full_checks))
    if full_refresh and (select is None or "marts" in select):
        _forget_spark_marts(settings)
    log.info("dbt build finished (as_of=%s)", as_of or "latest")


def checks_vars(full_checks: bool) -> dict[str, str] | None:
    """The dbt vars that make a build's data tests full (none for the nightly scope, so that the
    nightly builds keep dbt's partial parse: a change of vars re-parses the project)."""
    return {"kap_checks": "full"} if full_checks else None


#: The fingerprint a Spark build leaves in the DuckDB incremental state for the marts it wrote
#: (kap.spark.import_marts; macros/incremental.sql keeps the state).
SPARK_FINGERPRINT = "spark-import"
_STATE = "staging.kap_incremental_state"


def mark_spark_marts(con, tables: list[str]) -> None:
    """Record in the DuckDB incremental state that Spark wrote these marts: the next DuckDB build
    is then a --full-refresh one, which recreates them with DuckDB's own columns instead of
    appending a delta to Spark's rows."""
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute(f"CREATE TABLE IF NOT EXISTS {_STATE} (model_name VARCHAR, fingerprint VARCHAR, "
                "ingested_through VARCHAR)")
    if tables:
        con.execute(f"DELETE FROM {_STATE} WHERE model_name IN ({', '.join('?' for _ in tables)})", tables)
        con.executemany(f"INSERT INTO {_STATE} VALUES (?, ?, NULL)", [[t, SPARK_FINGERPRINT] for t in tables])


def marts_from_spark(con) -> bool:
    """Did a Spark build write the warehouse's marts since the last DuckDB build of them?"""
    have = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'staging' "
                       "AND table_name = 'kap_incremental_state'").fetchone()[0]
    return bool(have) and con.execute(f"SELECT count(*) FROM {_STATE} WHERE fingerprint = ?",
                                      [SPARK_FINGERPRINT]).fetchone()[0] > 0


def _marts_from_spark(settings: Settings) -> bool:
    from kap.warehouse import writer

    if not settings.warehouse.exists():
        return False
    with writer(settings) as con:
        return marts_from_spark(con)


def _forget_spark_marts(settings: Settings) -> None:
    from kap.warehouse import writer

    with writer(settings) as con:
        if marts_from_spark(con):
            con.execute(f"DELETE FROM {_STATE} WHERE fingerprint = ?", [SPARK_FINGERPRINT])


def parse(settings: Settings) -> Path:
    """Parse the project and return the path of the manifest.json it writes."""
    # The same --vars as a build without as_of: the partial_parse.msgpack this leaves in the target
    # folder then stays valid for the nightly builds, which skip a full parse.
    result = _invoke(["parse", *_common_args(settings), "--vars", _vars(None)], settings)
    if not result.success:
        raise DbtBuildError(f"dbt parse failed: {result.exception}")
    manifest = settings.dbt_target_dir / "manifest.json"
    if not manifest.exists():
        raise DbtBuildError(f"dbt parse succeeded but wrote no {manifest}")
    return manifest
