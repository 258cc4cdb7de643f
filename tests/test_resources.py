"""DuckDB's memory limit and threads reach every connection the pipeline opens, dbt's included
(kap.settings.duckdb_resources; README: settings)."""
from __future__ import annotations

import logging

import duckdb
import pytest

from kap import warehouse
from kap.settings import duckdb_resources


def _as_duckdb_reports(memory: str) -> str:
    """How DuckDB itself shows a memory_limit (it normalises the unit: '300MB' -> '286.1 MiB')."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory}'")
    return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def _settings_of(con) -> tuple[str, int]:
    memory, threads = con.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads')").fetchone()
    return memory, int(threads)


def test_the_defaults_bound_memory_and_use_the_cores(monkeypatch):
    monkeypatch.delenv("KAP_DUCKDB_MEMORY_LIMIT", raising=False)
    monkeypatch.delenv("KAP_DUCKDB_THREADS", raising=False)
    resources = duckdb_resources()
    assert resources["memory_limit"] == "2GB"
    assert int(resources["threads"]) >= 1


@pytest.mark.parametrize("name, value", [("KAP_DUCKDB_MEMORY_LIMIT", "lots"),
                                          ("KAP_DUCKDB_MEMORY_LIMIT", "2GB; DROP TABLE x"),
                                          ("KAP_DUCKDB_THREADS", "0"), ("KAP_DUCKDB_THREADS", "two")])
def test_a_bad_setting_is_refused_with_its_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        duckdb_resources()


def test_warehouse_connections_carry_the_limits(monkeypatch, tmp_settings):
    monkeypatch.setenv("KAP_DUCKDB_MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("KAP_DUCKDB_THREADS", "1")
    expected = (_as_duckdb_reports("300MB"), 1)
    with warehouse.writer(tmp_settings) as con:
        assert _settings_of(con) == expected
    con = warehouse.connect(tmp_settings, read_only=True)
    try:
        assert _settings_of(con) == expected
    finally:
        con.close()


def test_dbt_runs_with_the_same_limits(monkeypatch, tmp_settings, caplog):
    from kap.transform import run_dbt

    monkeypatch.setenv("KAP_DUCKDB_MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("KAP_DUCKDB_THREADS", "1")
    with warehouse.writer(tmp_settings):
        pass                                  # the warehouse file exists, as after any ingest
    with caplog.at_level(logging.INFO, logger="kap.dbt"):
        run_dbt(tmp_settings, ["run-operation", "kap_log_resources"])
    lines = [r.getMessage() for r in caplog.records if "duckdb resources:" in r.getMessage()]
    assert lines, "the macro's log line did not reach the kap.dbt logger"
    assert lines[-1].endswith(f"memory_limit={_as_duckdb_reports('300MB')} threads=1")
