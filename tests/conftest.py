"""Shared fixtures.

Airflow reads its configuration once, when it is first imported. So this module, which pytest
imports before any test module, points everything at a throwaway home first: KAP_HOME and
AIRFLOW_HOME (inside it) under the system temp folder, our dags/ folder, no examples. Nothing a
test runs can touch the repository's var/.

Fixtures for everyone:
- `tmp_settings`: a fresh, empty KAP_HOME per test (Settings) - use this for warehouse tests.
- `small_landing`: a generated clinic (40 patients x 60 days, 1 % faults), made once per session;
  treat it as read-only.
- `airflow_db`: the session's Airflow metadata DB, migrated once, with the pool kap_warehouse.
- `prepared_home`: the session home ready for DAG runs (DB, pool, dbt manifest). It belongs to
  the Airflow tests: its warehouse is the one `dag.test()` writes.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from kap.orchestration import environment as airflow_env
from kap.settings import Settings

SESSION_HOME = Path(tempfile.mkdtemp(prefix="kap-tests-"))
SESSION_SETTINGS = Settings(home=SESSION_HOME.resolve())
airflow_env.apply(SESSION_SETTINGS)  # sets KAP_HOME too
os.environ.pop("KAP_LANDING", None)  # the runs under test name their landing folder
os.environ["KAP_RETRY_DELAY_SECONDS"] = "1"  # a failing DAG run under test fails in seconds

if not os.environ.get("KAP_KEEP_TEST_HOME"):
    atexit.register(shutil.rmtree, SESSION_HOME, ignore_errors=True)

SMALL_CLINIC = {"patients": 40, "days": 60, "seed": 7, "fault_rate": 0.01}


@pytest.fixture
def tmp_settings(tmp_path: Path) -> Settings:
    """A fresh, empty KAP_HOME for one test."""
    return Settings(home=(tmp_path / "kap_home").resolve()).ensure_dirs()


@pytest.fixture(scope="session")
def small_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated landing folder (ehr/, dosing/, notes/), shared by the session: don't edit."""
    from kap.generator import generate

    out = tmp_path_factory.mktemp("landing") / "landing"
    generate(out, **SMALL_CLINIC)
    return out


@pytest.fixture(scope="session")
def airflow_db() -> Settings:
    """The session's Airflow metadata DB, migrated once, with the pool kap_warehouse."""
    airflow_env.ensure_metadata_db(SESSION_SETTINGS.ensure_dirs())
    return SESSION_SETTINGS


@pytest.fixture(scope="session")
def prepared_home(airflow_db: Settings) -> Settings:
    """The session home as `kap airflow` leaves it: DB migrated, pool created, dbt manifest parsed."""
    airflow_env.prepare(airflow_db)
    return airflow_db
