"""The Airflow environment of this project: AIRFLOW_HOME inside KAP_HOME, our DAGs, no examples.

`kap airflow ...` (kap.cli) calls `prepare` and then execs the `airflow` CLI with
`airflow_environ`; the tests call `apply` before they import Airflow. Nothing here imports Airflow
at module level: configuration must be in the environment before the first `import airflow`.
"""
from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from kap.settings import DAGS_DIR, DBT_PROJECT_DIR, Settings

log = logging.getLogger(__name__)

#: Every task that opens the DuckDB warehouse runs in this pool; one slot = one writer.
POOL = "kap_warehouse"
POOL_SLOTS = 1
POOL_DESCRIPTION = "DuckDB allows one read-write process per file: one warehouse task at a time."

_MARKER = ".kap_prepared.json"
_DBT_IGNORED_DIRS = {"target", "logs", "dbt_packages", "__pycache__"}


def jwt_secret(settings: Settings) -> str:
    """The secret every Airflow component of this home signs and checks task tokens with.

    Made once (random, owner-only file in the Airflow home) and passed to each process: a
    component that finds none generates its own, and the tokens the scheduler hands to task
    processes are then refused by the API server ("Invalid auth token")."""
    path = settings.airflow_home / ".jwt_secret"
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(64))
    return path.read_text().strip()


def airflow_environ(settings: Settings) -> dict[str, str]:
    """Environment variables that configure Airflow (and dbt inside it) for this KAP_HOME."""
    home = settings.airflow_home
    # Task processes reach the API server's execution API; Airflow's default URL is
    # http://localhost:8080, wrong when the port changes and when localhost resolves to ::1.
    port = os.environ.get("AIRFLOW__API__PORT", "8080")
    api_url = f"http://127.0.0.1:{port}"
    return {
        "PATH": environment_path(),
        "KAP_HOME": str(settings.home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Airflow 3 has no SequentialExecutor; LocalExecutor runs on the SQLite metadata DB.
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # Parsing the DAGs on a busy 2-core machine can take a few seconds.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret(settings),
        # Loopback only (make ui): no scheduler health-check server; if enabled, on 127.0.0.1.
        # The log servers, which bind every interface, are skipped by kap.orchestration.loopback.
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": port,
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        # There is no OpenLineage backend here.
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        # Task logs owner-only (Airflow's defaults are 0775 folders, 0664 files).
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600",
        # dbt would otherwise try to reach its tracking host from every task.
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "DO_NOT_TRACK": "1",
    }


def environment_bin() -> Path:
    """The bin/ folder of the Python environment running kap (where `airflow` and `dbt` live).

    Not resolved: a virtualenv's python is a symlink to the base interpreter, whose folder holds
    no `airflow`.
    """
    return Path(sys.executable).parent


def environment_path(path: str | None = None) -> str:
    """PATH with this environment's bin/ first: `airflow standalone` starts its scheduler, API
    server and DAG processor as `airflow ...` by name, so `.venv/bin/kap airflow standalone` run
    from a shell without the venv activated must still find this environment's `airflow`."""
    first = str(environment_bin())
    rest = [p for p in (os.environ.get("PATH", "") if path is None else path).split(os.pathsep)
            if p and p != first]
    return os.pathsep.join([first, *rest])


def apply(settings: Settings) -> dict[str, str]:
    """Put `airflow_environ(settings)` into os.environ (call before the first `import airflow`)."""
    env = airflow_environ(settings)
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != env["AIRFLOW_HOME"]:
        log.warning("airflow is already imported with AIRFLOW_HOME=%s; the new settings apply to "
                    "subprocesses only", os.environ.get("AIRFLOW_HOME"))
    os.environ.update(env)
    return env


def manifest_path(settings: Settings) -> Path:
    """The dbt manifest `prepare` writes; its target folder also holds dbt's partial-parse state,
    so the dbt tasks of a night start from a parsed project instead of parsing it each."""
    return settings.dbt_target_dir / "manifest.json"


def prepare(settings: Settings) -> None:
    """Make KAP_HOME ready for Airflow: metadata DB migrated, pool created, dbt manifest current.

    Idempotent and cheap on the second call: the DB step is skipped when a marker says this
    Airflow version already migrated this DB, the manifest is re-parsed only when a file of the
    dbt project is newer than it.
    """
    settings.ensure_dirs()
    ensure_metadata_db(settings)
    ensure_manifest(settings)


def _airflow_version() -> str:
    return importlib.metadata.version("apache-airflow")


def _db_ready(settings: Settings) -> bool:
    marker = settings.airflow_home / _MARKER
    if not (settings.airflow_home / "airflow.db").exists() or not marker.exists():
        return False
    try:
        state = json.loads(marker.read_text())
    except ValueError:
        return False
    return state.get("airflow") == _airflow_version() and state.get("pool") == [POOL, POOL_SLOTS]


def ensure_metadata_db(settings: Settings) -> None:
    if _db_ready(settings):
        return
    log.info("migrating the Airflow metadata DB in %s and creating pool %s", settings.airflow_home, POOL)
    env = {**os.environ, **airflow_environ(settings)}
    # A child process: this process may already have imported Airflow with other settings.
    subprocess.run([sys.executable, "-c", "from kap.orchestration.environment import _bootstrap; _bootstrap()"],
                   env=env, check=True)
    (settings.airflow_home / _MARKER).write_text(
        json.dumps({"airflow": _airflow_version(), "pool": [POOL, POOL_SLOTS]}))


def _bootstrap() -> None:
    """Run in a child process configured by airflow_environ: migrate the DB, create the pool."""
    from airflow.models.pool import Pool
    from airflow.utils import db

    db.upgradedb()
    Pool.create_or_update_pool(POOL, slots=POOL_SLOTS, description=POOL_DESCRIPTION, include_deferred=False)


def _newest_project_file(project_dir: Path = DBT_PROJECT_DIR) -> float:
    newest = 0.0
    for dirpath, dirnames, filenames in os.walk(project_dir):
        dirnames[:] = [d for d in dirnames if d not in _DBT_IGNORED_DIRS and not d.startswith(".")]
        for name in filenames:
            newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
    return newest


def manifest_is_current(settings: Settings) -> bool:
    manifest = manifest_path(settings)
    return manifest.exists() and manifest.stat().st_mtime >= _newest_project_file()


def ensure_manifest(settings: Settings) -> Path:
    """Parse the dbt project into KAP_HOME/dbt/target/manifest.json unless it is up to date."""
    manifest = manifest_path(settings)
    if manifest_is_current(settings):
        return manifest
    try:
        from kap.transform import parse
    except ImportError as missing:
        raise RuntimeError(f"cannot write the dbt manifest: {missing}") from missing
    log.info("parsing the dbt project into %s", manifest)
    written = Path(parse(settings))
    if not written.exists():
        raise RuntimeError(f"dbt parse reported {written}, which does not exist")
    return written
