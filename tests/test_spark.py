"""One dbt project, two engines: the marts built on Spark from the lake equal those built on DuckDB
from the warehouse, published table for table, row for row (kap/compare.py), on a small clinic with
corrections, retractions and quarantined records - after the first night and after an incremental
second night.

`make test-spark` runs this (it installs the spark extra); `make test` deselects it (marker spark).
One home, one process, one SparkSession for every Spark build: each night is ingested once (the
lake written by the ingest), built on DuckDB and published to duckdb_<night>.duckdb, built on
Spark and published to spark_<night>.duckdb by the same publish code.
"""
from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from kap import transform
from kap.compare import compare_published, kind
from kap.settings import Settings

pytestmark = [pytest.mark.spark, pytest.mark.slow]

CLINIC = {"patients": 50, "days": 120, "seed": 31, "fault_rate": 0.02}


@pytest.fixture(scope="module")
def spark_home(tmp_path_factory) -> tuple[Settings, Path]:
    pytest.importorskip("pyspark")
    pytest.importorskip("dbt.adapters.spark")
    from kap.generator import generate
    from test_dbt_incremental import split_into_nights

    root = tmp_path_factory.mktemp("spark")
    generate(root / "generated", **CLINIC)
    split_into_nights(root / "generated", root / "landing")
    settings = Settings(home=(root / "home").resolve(), engine="duckdb").ensure_dirs()
    return settings, root / "landing"


def _spark_column_kinds(settings: Settings, table: str) -> list[tuple[str, str]]:
    """The kinds of Spark's own column types, as the import maps them (decimals -> DOUBLE)."""
    from kap.spark import warehouse_dir

    con = duckdb.connect()
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{warehouse_dir(settings)}/marts.db/{table}/*.parquet')"
                           ).fetchall()
    finally:
        con.close()
    return [(name, "floating" if dtype.startswith("DECIMAL") else kind(dtype)) for name, dtype, *_ in rows]


def test_spark_marts_equal_duckdb_marts_over_two_nights(spark_home, record_property):
    from kap.publish import publish
    from kap.spark import build as spark_build
    from test_dbt_incremental import ingest

    settings, landing = spark_home
    nights: tuple[str, ...] = ()
    timings = {}
    for night in ("night1", "night2"):
        nights += (night,)
        ingest(landing, settings, nights)
        started = time.monotonic()
        transform.build(settings, engine="duckdb")
        timings[f"{night} duckdb"] = time.monotonic() - started
        duck = publish(settings, run_id=f"duckdb-{night}", target=settings.home / f"duckdb_{night}.duckdb")
        with duckdb.connect(str(settings.warehouse), read_only=True) as con:
            duck_kinds = {t: [(c, kind(d)) for c, d in con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'marts' "
                "AND table_name = ? ORDER BY ordinal_position", [t]).fetchall()]
                for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = 'marts'").fetchall()}

        started = time.monotonic()
        imported = spark_build(settings)
        timings[f"{night} spark"] = time.monotonic() - started
        spark = publish(settings, run_id=f"spark-{night}", target=settings.home / f"spark_{night}.duckdb")

        assert sorted(imported) == sorted(duck_kinds), "Spark builds the same marts"
        for table in imported:     # Spark's own types are of the same kinds as DuckDB's
            assert _spark_column_kinds(settings, table) == duck_kinds[table], table
        report = compare_published(duck, spark)
        print(report.text())
        assert len(report.pairs) > 1, "the per-clinic files are compared too"
        assert report.equal, report.text()
    for name, seconds in timings.items():
        record_property(name, round(seconds, 1))
        print(f"{name}: {seconds:.1f} s")


def test_spark_refuses_a_lake_that_differs_from_the_log(spark_home):
    """The Spark build checks the lake first: a part whose rows were altered stops it before any
    Spark work (a missing part would simply be written again by the sync that precedes the check)."""
    from kap import lake
    from kap.spark import build as spark_build
    from test_dbt_incremental import ingest
    from test_lake import alter_one_row

    settings, landing = spark_home
    ingest(landing, settings, ("night1",))
    part = sorted((settings.lake / "quarantine").rglob("part-*.parquet"))[0]
    original = part.read_bytes()
    alter_one_row(part, "reason_code")
    try:
        with pytest.raises(lake.LakeMismatch, match="quarantine"):
            spark_build(settings)
    finally:
        part.write_bytes(original)
