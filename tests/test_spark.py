"""One dbt project, two engines: the marts built on Spark from the lake equal those built on DuckDB
from the warehouse, published table for table, row for row (kap/compare.py), on a small clinic with
corrections, retractions and quarantined records - after the first night and after an incremental
second night.

`make test-spark` runs this (it installs the spark extra); `make test` deselects it (marker spark).
One process, one SparkSession for every Spark build. Each night is ingested once, into home A
(the lake written by the ingest); A's warehouse and lake are then copied to home B. A builds on
DuckDB (incremental on night 2), B on Spark (always a full rebuild); each publishes with the same
code, and the two published files (and their clinic files) are compared. Two homes keep the DuckDB
night 2 incremental: in one home a Spark build is followed by a full-refresh DuckDB build, which
the end of the test checks as well.
"""
from __future__ import annotations

import os
import shutil
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
def spark_homes(tmp_path_factory) -> tuple[Settings, Settings, Path]:
    pytest.importorskip("pyspark")
    pytest.importorskip("dbt.adapters.spark")
    from kap.generator import generate
    from test_dbt_incremental import split_into_nights

    root = tmp_path_factory.mktemp("spark")
    generate(root / "generated", **CLINIC)
    split_into_nights(root / "generated", root / "landing")
    duck = Settings(home=(root / "duckdb_home").resolve(), engine="duckdb").ensure_dirs()
    spark = Settings(home=(root / "spark_home").resolve(), engine="spark").ensure_dirs()
    return duck, spark, root / "landing"


def _copy_log(source: Settings, target: Settings) -> None:
    """The event log as ingested in `source` (warehouse and lake), now also in `target`."""
    shutil.copyfile(source.warehouse, target.warehouse)
    shutil.rmtree(target.lake, ignore_errors=True)
    shutil.copytree(source.lake, target.lake)


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


def _jvm_peak_mb() -> float | None:
    """Peak RSS (VmHWM) of the Spark JVM this process started, for docs/scaling.md."""
    import os

    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, peak = [os.getpid()], None
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if "Name:\tjava" in status:
            kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
            peak = max(peak or 0, kb / 1024)
    return peak


def test_spark_marts_equal_duckdb_marts_over_two_nights(spark_homes, record_property):
    from kap.publish import publish
    from kap.spark import build as spark_build
    from test_dbt_incremental import ingest

    duck_home, spark_home, landing = spark_homes
    nights: tuple[str, ...] = ()
    timings = {}
    for night in ("night1", "night2"):
        nights += (night,)
        ingest(landing, duck_home, nights)
        _copy_log(duck_home, spark_home)

        started = time.monotonic()
        transform.build(duck_home)
        timings[f"{night} duckdb build"] = time.monotonic() - started
        duck = publish(duck_home, run_id=f"duckdb-{night}", target=duck_home.home / f"published_{night}.duckdb")
        with duckdb.connect(str(duck_home.warehouse), read_only=True) as con:
            duck_kinds = {t: [(c, kind(d)) for c, d in con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'marts' "
                "AND table_name = ? ORDER BY ordinal_position", [t]).fetchall()]
                for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = 'marts'").fetchall()}

        started = time.monotonic()
        # the data tests once: the second night's marts are checked by the comparison
        imported = spark_build(spark_home, data_tests=night == "night1")
        timings[f"{night} spark build" + ("" if night == "night1" else " (models only)")] = time.monotonic() - started
        spark = publish(spark_home, run_id=f"spark-{night}", target=spark_home.home / f"published_{night}.duckdb")

        assert sorted(imported) == sorted(duck_kinds), "Spark builds the same marts"
        for table in imported:     # Spark's own types are of the same kinds as DuckDB's
            assert _spark_column_kinds(spark_home, table) == duck_kinds[table], table
        report = compare_published(duck, spark)
        assert len(report.pairs) > 1, "the per-clinic files are compared too"
        assert report.equal, report.text()
        print(f"{night}: {len(report.tables)} published tables in {len(report.pairs)} files equal, "
              f"{sum(d.rows_reference or 0 for _, d in report.tables):,} rows")

    # the same home, engine switched back: a full-refresh DuckDB build, DuckDB's columns again
    started = time.monotonic()
    transform.build(spark_home)
    timings["duckdb build after spark, same home"] = time.monotonic() - started
    again = publish(spark_home, run_id="duckdb-after-spark", target=spark_home.home / "published_duckdb.duckdb")
    report = compare_published(duck, again)
    assert report.equal, report.text()
    for name, seconds in timings.items():
        record_property(name, round(seconds, 1))
        print(f"{name}: {seconds:.1f} s")
    print(f"Spark JVM peak RSS: {_jvm_peak_mb() or 0:.0f} MB")


def test_spark_refuses_a_lake_that_differs_from_the_log(spark_homes):
    """The Spark build checks the lake first: a part whose rows were altered stops it before any
    Spark work (a missing part would simply be written again by the sync that precedes the check)."""
    from kap import lake
    from kap.spark import build as spark_build
    from test_dbt_incremental import ingest
    from test_lake import alter_one_row

    duck_home, spark_home, landing = spark_homes
    ingest(landing, duck_home, ("night1",))
    _copy_log(duck_home, spark_home)
    alter_one_row(sorted((spark_home.lake / "quarantine").rglob("part-*.parquet"))[0], "reason_code")
    with pytest.raises(lake.LakeMismatch, match="quarantine"):
        spark_build(spark_home)


@pytest.mark.skipif(os.environ.get("KAP_SPARK_UNIT_TESTS") != "1",
                    reason="about 6 minutes more on a busy 2-core machine: make test-spark KAP_SPARK_UNIT_TESTS=1")
def test_dbt_unit_tests_pass_on_spark(spark_homes):
    """The YAML unit tests on the Spark target, after a Spark build (they take their inputs' column
    types from the built relations). Same names, same verdicts as on DuckDB."""
    from kap.spark import SECRETS_VIEW, _spark_env, build as spark_build
    from test_dbt_incremental import ingest
    from test_dbt_unit_tests import EXPECTED

    duck_home, spark_home, landing = spark_homes
    if not (spark_home.spark_dir / "warehouse" / "marts.db").is_dir():   # run on its own
        ingest(landing, duck_home, ("night1",))
        _copy_log(duck_home, spark_home)
        spark_build(spark_home)
    with _spark_env(spark_home):
        try:
            results = transform.run_dbt(spark_home, ["test", "--select", "test_type:unit"], engine="spark",
                                        extra_vars={"kap_secrets": SECRETS_VIEW})
            outcome = {r.node.name: str(r.status) for r in results.results}
        except transform.DbtBuildError as failed:
            outcome = {f.split(":")[0].split(".")[2]: "fail" for f in failed.failures}
            print("\n".join(failed.failures))
    assert set(outcome) <= EXPECTED
    assert {name: status for name, status in outcome.items() if status != "pass"} == {}
    assert set(outcome) == EXPECTED
