"""Where everything lives. One place resolves paths so the CLI, the DAGs and the tests agree."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
DAGS_DIR = PROJECT_ROOT / "dags"


@dataclass(frozen=True)
class Settings:
    """Paths under KAP_HOME (default `var/` in the project root)."""

    home: Path

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

    def ensure_dirs(self) -> "Settings":
        for path in (self.home, self.dq_dir, self.reports_dir, self.airflow_home):
            path.mkdir(parents=True, exist_ok=True)
        return self
