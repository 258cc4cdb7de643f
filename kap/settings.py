"""Where everything lives. One place resolves paths so the CLI, the DAGs and the tests agree."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ingest.limits import DEFAULT as DEFAULT_LIMITS
from ingest.limits import Limits

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
DAGS_DIR = PROJECT_ROOT / "dags"


# Resource limits per landing file (ingest.limits): environment variable -> Limits field.
LIMIT_ENV: dict[str, str] = {
    "KAP_MAX_FILE_BYTES": "max_decompressed_bytes",
    "KAP_MAX_EXPANSION_RATIO": "max_expansion_ratio",
    "KAP_MAX_LINE_BYTES": "max_line_bytes",
    "KAP_MAX_JSON_DEPTH": "max_json_depth",
}
ANALYTICS_MODE_ENV = "KAP_ANALYTICS_MODE"
ENGINE_ENV = "KAP_ENGINE"
LAKE_ENV = "KAP_LAKE"
# The engines the dbt project builds on: DuckDB on the warehouse, or Spark on the lake.
ENGINES = ("duckdb", "spark")
DEFAULT_ANALYTICS_MODE = 0o640
# DuckDB's own resources on every connection the pipeline opens (dbt's included): its buffer
# limit, past which joins, sorts and aggregates spill to disk, and its worker threads. DuckDB's
# default limit is 80 % of the machine, which lets one night take most of a shared server.
DUCKDB_MEMORY_ENV = "KAP_DUCKDB_MEMORY_LIMIT"
DUCKDB_THREADS_ENV = "KAP_DUCKDB_THREADS"
DEFAULT_DUCKDB_MEMORY = "2GB"
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def limits_from_env() -> Limits:
    """The ingest limits, each from its environment variable when set (README: settings)."""
    values = {}
    for env, name in LIMIT_ENV.items():
        raw = os.environ.get(env, "").strip()
        if raw:
            kind = float if name == "max_expansion_ratio" else int
            try:
                values[name] = kind(raw)
            except ValueError:
                raise ValueError(f"{env}={raw!r} is not a number") from None
    return Limits(**{**DEFAULT_LIMITS.__dict__, **values})


def analytics_mode_from_env() -> int:
    """Mode of the published analytics files: octal, owner read/write plus at most group read."""
    raw = os.environ.get(ANALYTICS_MODE_ENV, "").strip()
    if not raw:
        return DEFAULT_ANALYTICS_MODE
    try:
        mode = int(raw, 8)
    except ValueError:
        raise ValueError(f"{ANALYTICS_MODE_ENV}={raw!r} is not an octal mode such as 0640") from None
    if mode & ~0o770 or (mode & 0o600) != 0o600:
        raise ValueError(f"{ANALYTICS_MODE_ENV}={raw!r}: owner read/write, group at most read/write, "
                         "nothing for others (e.g. 0600 or 0640)")
    return mode


def duckdb_resources() -> dict[str, str]:
    """memory_limit and threads for DuckDB, from KAP_DUCKDB_MEMORY_LIMIT (default 2GB) and
    KAP_DUCKDB_THREADS (default: the machine's cores)."""
    memory = (os.environ.get(DUCKDB_MEMORY_ENV) or DEFAULT_DUCKDB_MEMORY).strip()
    if not _MEMORY.match(memory):
        raise ValueError(f"{DUCKDB_MEMORY_ENV}={memory!r} is not a size such as 2GB or 1500MB")
    raw = (os.environ.get(DUCKDB_THREADS_ENV) or "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{DUCKDB_THREADS_ENV}={raw!r} is not a positive whole number")
        threads = int(raw)
    else:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"memory_limit": memory.replace(" ", ""), "threads": str(threads)}


def limit_resources(con, resources: dict[str, str] | None = None):
    """Apply duckdb_resources() to an open connection (SET, so that connections to one file in
    one process never differ in their open-time configuration). Returns the connection."""
    for key, value in (resources or duckdb_resources()).items():
        con.execute(f"SET {key} = '{value}'")
    return con


def engine_from_env() -> str:
    """KAP_ENGINE: which engine builds the marts (duckdb, the default, or spark)."""
    raw = (os.environ.get(ENGINE_ENV) or "duckdb").strip().lower()
    if raw not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}={raw!r}: one of {', '.join(ENGINES)}")
    return raw


def lake_from_env() -> Path | None:
    """KAP_LAKE: where the event log's Parquet copy lives, when not KAP_HOME/lake."""
    raw = (os.environ.get(LAKE_ENV) or "").strip()
    return Path(raw).resolve() if raw else None


@dataclass(frozen=True)
class Settings:
    """Paths under KAP_HOME (default `var/` in the project root), the ingest limits per file,
    the published files' mode, the engine that builds the marts and the lake's place (all from
    the environment, see the README)."""

    home: Path
    limits: Limits = field(default_factory=limits_from_env)
    analytics_mode: int = field(default_factory=analytics_mode_from_env)
    engine: str = field(default_factory=engine_from_env)
    lake_root: Path | None = field(default_factory=lake_from_env)

    @classmethod
    def from_env(cls, home: str | os.PathLike | None = None) -> "Settings":
        chosen = home or os.environ.get("KAP_HOME") or PROJECT_ROOT / "var"
        return cls(home=Path(chosen).resolve())

    @property
    def warehouse(self) -> Path:
        """Restricted zone: the event log, quarantine, identity map and every dbt layer."""
        return self.home / "warehouse.duckdb"

    @property
    def analytics(self) -> Path:
        """BI zone: the published, PHI-free snapshot."""
        return self.home / "analytics.duckdb"

    @property
    def dq_dir(self) -> Path:
        return self.home / "dq"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def landing(self) -> Path:
        """Default landing folder (`make demo` generates the sample clinic here)."""
        return self.home / "landing"

    @property
    def lake(self) -> Path:
        """The event log as hive-partitioned Parquet (kap/lake.py): what the Spark engine reads."""
        return self.lake_root or self.home / "lake"

    @property
    def spark_dir(self) -> Path:
        """The Spark engine's scratch: its warehouse folder (the tables dbt writes) and logs."""
        return self.home / "spark"

    @property
    def lock_file(self) -> Path:
        return self.home / "warehouse.lock"

    @property
    def dbt_target_dir(self) -> Path:
        return self.home / "dbt" / "target"

    @property
    def logs_dir(self) -> Path:
        """One log file per `kap run` / `kap ingest` / `kap build` (<run id>.log), full detail."""
        return self.home / "logs"

    @property
    def dbt_log_dir(self) -> Path:
        return self.home / "dbt" / "logs"

    @property
    def home_mode(self) -> int:
        """KAP_HOME's own mode: owner-only, plus group search (x, never list) when the published
        files are group-readable, so the BI group can open them by name and nothing else."""
        return 0o710 if self.analytics_mode & 0o040 else 0o700

    def ensure_dirs(self) -> "Settings":
        """Create the home's folders owner-only and make the process create owner-only files
        (restrict_umask); modes already too open under KAP_HOME are tightened (secure_home)."""
        restrict_umask()
        for path in (self.home, self.dq_dir, self.reports_dir, self.airflow_home):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        secure_home(self)
        return self


def default_time_zone() -> str | None:
    """KAP_TIMEZONE (IANA name) when set: the time zone of a clinic that has none of its own."""
    value = (os.environ.get("KAP_TIMEZONE") or "").strip()
    return value or None


def clinic_time_zones() -> dict[str, str]:
    """Per-clinic time zones from KAP_CLINIC_TIMEZONES, `clinic-id=America/New_York,other=UTC`.

    Used for a clinic whose Organization/Location carries no FHIR timezone extension."""
    zones: dict[str, str] = {}
    for part in (os.environ.get("KAP_CLINIC_TIMEZONES") or "").replace(";", ",").split(","):
        if "=" in part:
            clinic, zone = (p.strip() for p in part.split("=", 1))
            if clinic and zone:
                zones[clinic] = zone
    return zones


# Least privilege on disk: everything under KAP_HOME is the owner's alone (0700 folders, 0600
# files), but the published analytics files, whose mode is the setting KAP_ANALYTICS_MODE.
OWNER_ONLY_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


def restrict_umask() -> None:
    """Files and folders this process (and its children: Airflow, dbt) creates are owner-only."""
    os.umask(os.umask(OWNER_ONLY_UMASK) | OWNER_ONLY_UMASK)


def is_published_file(path: Path, home: Path) -> bool:
    """analytics.duckdb, analytics_asof_*.duckdb and analytics_clinic_*.duckdb directly in KAP_HOME."""
    return (path.parent == home and path.name.startswith("analytics") and path.suffix == ".duckdb"
            and ".tmp-" not in path.name)


def secure_home(settings: "Settings") -> None:
    """Tighten modes under KAP_HOME: folders 0700 (the home itself `home_mode`), files 0600,
    published analytics files `analytics_mode`. Symbolic links are not followed; a file that
    vanishes or belongs to someone else meanwhile is left as it is."""
    home = settings.home

    def chmod(path: Path, mode: int) -> None:
        try:
            st = os.lstat(path)
            if (st.st_mode & 0o7777) != mode:
                os.chmod(path, mode)
        except OSError:
            pass

    if not home.is_dir():
        return
    chmod(home, settings.home_mode)
    for dirpath, dirnames, filenames in os.walk(home):
        base = Path(dirpath)
        for d in dirnames:
            if not (base / d).is_symlink():
                chmod(base / d, DIR_MODE)
        for f in filenames:
            p = base / f
            if p.is_symlink():
                continue
            chmod(p, settings.analytics_mode if is_published_file(p, home) else FILE_MODE)
