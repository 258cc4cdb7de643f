"""The Spark engine: the same dbt project built on Apache Spark from the lake, the marts read back
into the warehouse, so validation and publish (kap/publish.py) are the same code for both engines.

`build` (what `kap build --engine spark`, `kap run` with KAP_ENGINE=spark and the nightly DAG call):

1. under the single-writer lock, bring the lake up to date and refuse to go on unless it equals
   the event log (kap.lake.require_match: count and checksum per table);
2. `dbt run-operation kap_create_lake_views` on the `spark` target: dbt-spark starts a local
   SparkSession in this process (`method: session`, profiles.yml) and the raw sources become views
   over the lake; the databases the build writes are dropped and created again under
   KAP_HOME/spark/warehouse - every Spark build is a full rebuild (no Delta Lake: see
   macros/incremental.sql);
3. the source-key secret, read from restricted.secrets, becomes a temporary view of that session
   (var kap_secrets): it is never written to the lake, a file or a log;
4. `dbt build` on the `spark` target: models and data tests, as on DuckDB;
5. every table of the Spark `marts` database is read from its Parquet files by DuckDB into the
   warehouse's `marts` schema, in one transaction, replacing the tables there (a column keeps the
   type the table had, else decimals become DOUBLE, as DuckDB computes them), and the DuckDB
   incremental state marks them as Spark's, so the next DuckDB build is a --full-refresh one that
   recreates them with DuckDB's own columns instead of adding a delta to Spark's rows.

pyspark and dbt-spark are the optional `spark` extra (`uv sync --extra spark`); importing this
module does not need them.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kap import lake
from kap.settings import Settings
from kap.transform import mark_spark_marts, run_dbt
from kap.warehouse import path_for_sql, writer, writer_lock

log = logging.getLogger(__name__)

#: The databases a Spark build writes (generate_schema_name: the layer names, the seeds' schema).
BUILD_SCHEMAS = ("staging", "intermediate", "marts", "reference")
SECRETS_VIEW = "kap_secrets"


class SparkUnavailable(RuntimeError):
    """The spark extra is not installed in this environment."""


def _require_extra() -> None:
    try:
        import pyspark  # noqa: F401
        import dbt.adapters.spark  # noqa: F401
    except ImportError as missing:
        raise SparkUnavailable(
            f"the Spark engine needs the spark extra ({missing.name} is missing): "
            "uv sync --frozen --extra spark") from None


def warehouse_dir(settings: Settings) -> Path:
    return settings.spark_dir / "warehouse"


@contextmanager
def _spark_env(settings: Settings) -> Iterator[None]:
    """What profiles.yml's spark target reads, for the duration of the build."""
    values = {"KAP_SPARK_WAREHOUSE": str(warehouse_dir(settings)), "KAP_LAKE": str(settings.lake)}
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _present_tables(root: Path) -> list[str]:
    return [t.name for t in lake.TABLES if lake.lake_relation(root, t) is not None]


def build(settings: Settings, as_of: str | None = None, select: str | None = None,
          unit_tests: bool = False, data_tests: bool = True, on_node=None) -> list[str]:
    """Build on Spark and read the marts back (see the module doc); returns the marts imported.
    data_tests=False builds the models only (the engine comparison runs the tests once)."""
    from ingest.schema import SOURCE_ID_SECRET

    _require_extra()
    with writer_lock(settings):
        with writer(settings) as con:
            lake.sync(con, settings.lake)
            lake.require_match(con, settings.lake)
            secret = con.execute("SELECT value FROM restricted.secrets WHERE name = ?",
                                 [SOURCE_ID_SECRET]).fetchone()[0]
        tables = _present_tables(settings.lake)
        spark_home = warehouse_dir(settings)
        shutil.rmtree(spark_home, ignore_errors=True)      # a full rebuild: nothing kept between builds
        spark_home.mkdir(mode=0o700, parents=True)
        locations = {schema: str(spark_home / f"{schema}.db") for schema in BUILD_SCHEMAS}
        with _spark_env(settings):
            run_dbt(settings, ["run-operation", "kap_create_lake_views", "--args",
                               json.dumps({"root": str(settings.lake), "tables": tables, "locations": locations})],
                    engine="spark")
            _register_secret(secret)
            excluded = ([] if unit_tests else ["test_type:unit"]) + ([] if data_tests else ["resource_type:test"])
            command = ["build"] + (["--exclude", " ".join(excluded)] if excluded else [])
            if select:
                command += ["--select", select]
            run_dbt(settings, command, as_of=as_of, on_node=on_node, engine="spark",
                    extra_vars={"kap_secrets": SECRETS_VIEW})
        imported = import_marts(settings, Path(locations["marts"]))
    log.info("spark build finished (as_of=%s): %d marts read back into the warehouse", as_of or "latest",
             len(imported))
    return imported


def _register_secret(secret: str) -> None:
    """The secret as a temporary view of the session dbt-spark uses (the one of this process)."""
    from pyspark.sql import SparkSession

    session = SparkSession.builder.getOrCreate()
    # dbt-spark asks the builder for the session at every statement; Spark warns each time
    session.sparkContext.setLogLevel("ERROR")
    session.createDataFrame([("source_id_key", secret)], "name string, value string") \
        .createOrReplaceTempView(SECRETS_VIEW)


def _import_select(con, relation: str, keep_types: dict[str, str] | None = None) -> str:
    """The select list that reads a Spark table into DuckDB.

    A column of a table the warehouse already has (same columns, in order) keeps the type it
    has there: switching engines does not change what BI tools see. Otherwise Spark's decimals
    (1.0 * x / y) become DOUBLE, as DuckDB computes those expressions, and a timestamp with a
    zone becomes the UTC wall clock (the marts' timestamps are UTC)."""
    items = []
    for name, dtype, *_ in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall():
        q = '"' + name.replace('"', '""') + '"'
        if keep_types:
            items.append(f"CAST({q} AS {keep_types[name]}) AS {q}")
        elif dtype.startswith("DECIMAL"):
            items.append(f"CAST({q} AS DOUBLE) AS {q}")
        elif dtype == "TIMESTAMP WITH TIME ZONE":
            items.append(f"timezone('UTC', {q}) AS {q}")
        else:
            items.append(q)
    return ", ".join(items)


def _existing_types(con, table: str, relation: str) -> dict[str, str] | None:
    have = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'marts' "
                       "AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
    spark_cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    return dict(have) if [c for c, _ in have] == spark_cols else None


def import_marts(settings: Settings, marts_dir: Path) -> list[str]:
    """Every table Spark wrote to marts_dir (<table>/*.parquet) -> the warehouse's marts schema."""
    folders = sorted(p for p in marts_dir.iterdir() if p.is_dir()) if marts_dir.is_dir() else []
    imported = []
    with writer(settings) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute("BEGIN TRANSACTION")
        try:
            for folder in folders:
                relation = f"read_parquet({path_for_sql(folder / '*.parquet')})"
                keep = _existing_types(con, folder.name, relation)
                con.execute(f'CREATE OR REPLACE TABLE marts."{folder.name}" AS '
                            f"SELECT {_import_select(con, relation, keep)} FROM {relation}")
                imported.append(folder.name)
            mark_spark_marts(con, imported)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return imported
