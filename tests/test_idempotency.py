"""Idempotency and replay: the event log is the single source of truth.

One generated clinic (module-scoped), one warehouse:
1. `kap.pipeline.run` (the nightly pipeline) -> snapshot A;
2. the same night again on the same landing folder -> snapshot B: no file re-read, no event added,
   the same event ids, byte-for-byte the same published tables;
3. every derived schema (staging, intermediate, marts, dq) dropped from warehouse.duckdb, rebuilt
   from raw.* alone (dbt build, mart checks, publish) -> snapshot C: the same published tables.

A published table's fingerprint is its row count plus the md5 of all its rows, each rendered as
text over all columns, sorted (`md5(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR))`), so row
order on disk does not matter but every value does.
"""
from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pytest

from kap.settings import Settings
from kap.generator import generate

pytest.importorskip("kap.transform", reason="kap.transform (dbt build) is missing")
pytest.importorskip("kap.publish", reason="kap.publish is missing")
pytest.importorskip("kap.quality", reason="kap.quality is missing")

from kap import pipeline  # noqa: E402
from kap.quality.targets import MART_TABLES  # noqa: E402

CLINIC = {"patients": 30, "days": 90, "seed": 515, "fault_rate": 0.02}
KEEP_SCHEMAS = {"raw", "restricted", "main", "information_schema", "pg_catalog"}


def _fingerprint_table(con, table: str, exclude: tuple[str, ...] = (), where: str = "") -> tuple[int, str]:
    cols = [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table]).fetchall() if r[0] not in exclude]
    assert cols, table
    row = "concat_ws('\x1f', " + ", ".join(f"coalesce(\"{c}\"::VARCHAR, '\x00')" for c in cols) + ")"
    return con.execute(f"""
        SELECT count(*), md5(coalesce(string_agg(r, '|' ORDER BY r), ''))
        FROM (SELECT {row} AS r FROM "{table}" {where})""").fetchone()


def published_fingerprints(settings: Settings) -> dict[str, tuple[int, str]]:
    con = duckdb.connect(str(settings.analytics), read_only=True)
    try:
        out = {t: _fingerprint_table(con, t) for t in MART_TABLES}
        # data-quality results of the marts stage: the same checks on the same marts (run_id aside);
        # the landing stage covers only "this run's files", so it legitimately differs per run
        out["dq_results[marts]"] = _fingerprint_table(con, "dq_results", exclude=("run_id",),
                                                      where="WHERE stage = 'marts'")
        out["_dq_rows"] = con.execute("SELECT * EXCLUDE (run_id) FROM dq_results WHERE stage = 'marts' "
                                      "ORDER BY check_id").fetchall()
    finally:
        con.close()
    return out


def log_state(settings: Settings) -> dict[str, object]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return {
            "events": con.execute("SELECT count(*), md5(string_agg(event_id, ',' ORDER BY event_id)) "
                                  "FROM raw.events").fetchone(),
            "event_rows": con.execute("SELECT md5(string_agg(concat_ws('|', event_id, event_type, patient_key, "
                                      "occurred_at, recorded_at, ingested_at, file_id, source_record_id, "
                                      "payload::VARCHAR), ',' ORDER BY event_id)) FROM raw.events").fetchone(),
            "files": con.execute("SELECT count(*), md5(string_agg(concat_ws('|', file_id, status, records_read, "
                                 "records_accepted, records_quarantined, records_duplicate, records_ignored), "
                                 "',' ORDER BY file_id)) FROM raw.ingest_files").fetchone(),
            "quarantine": con.execute("SELECT count(*) FROM raw.quarantine").fetchone(),
            "keys": con.execute("SELECT count(*), md5(string_agg(patient_key || id_system || id_value, ',' "
                                "ORDER BY id_system, id_value)) FROM restricted.patient_keys").fetchone(),
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run the night twice, then drop the derived layers and rebuild: snapshots A, B, C."""
    logging.getLogger("ingest.loader").setLevel(logging.CRITICAL)
    landing = tmp_path_factory.mktemp("idem") / "landing"
    generate(landing, **CLINIC)
    settings = Settings(home=tmp_path_factory.mktemp("idem_home").resolve()).ensure_dirs()
    quiet = lambda msg: None  # noqa: E731

    first = pipeline.run(landing, settings, progress=quiet)
    a = {"log": log_state(settings), "published": published_fingerprints(settings), "summary": first}

    second = pipeline.run(landing, settings, progress=quiet)
    b = {"log": log_state(settings), "published": published_fingerprints(settings), "summary": second}

    con = duckdb.connect(str(settings.warehouse))
    try:
        derived = [r[0] for r in con.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = current_database()"
        ).fetchall() if r[0] not in KEEP_SCHEMAS]
        for schema in derived:
            con.execute(f'DROP SCHEMA "{schema}" CASCADE')
        left = {r[0] for r in con.execute(
            "SELECT DISTINCT table_schema FROM information_schema.tables "
            "WHERE table_catalog = current_database()").fetchall()}
    finally:
        con.close()
    assert {"staging", "intermediate", "marts"} <= set(derived) and left <= KEEP_SCHEMAS
    settings.analytics.unlink()
    pipeline.step_build(settings)
    pipeline.step_validate(settings, "marts", "rebuild")
    pipeline.step_publish(settings, "rebuild")
    c = {"log": log_state(settings), "published": published_fingerprints(settings)}
    return a, b, c


def _dq_diff(x, y) -> list:
    """The data-quality rows that differ, to say what changed."""
    return [(r, s) for r, s in zip(x["published"]["_dq_rows"], y["published"]["_dq_rows"]) if r != s][:5]


def test_first_night_published_every_mart(runs):
    a, _, _ = runs
    assert a["log"]["events"][0] > 500
    for table in MART_TABLES:
        assert a["published"][table][0] > 0, f"{table} is empty: the fingerprints below would prove little"


def test_second_night_adds_nothing(runs):
    a, b, _ = runs
    ingest = b["summary"].steps["ingest"]
    assert ingest.totals["events_added"] == 0
    assert ingest.totals["files_skipped"] == len(ingest.files) > 0
    assert b["log"] == a["log"]


def test_second_night_publishes_identical_tables(runs):
    a, b, _ = runs
    diff = {t: (a["published"][t], b["published"][t]) for t in a["published"]
            if a["published"][t] != b["published"][t] and not t.startswith("_")}
    assert diff == {}, _dq_diff(a, b)


def test_rebuild_from_event_log_is_byte_identical(runs):
    a, _, c = runs
    assert c["log"] == a["log"], "rebuilding must not touch raw.* or restricted.*"
    diff = {t: (a["published"][t], c["published"][t]) for t in a["published"]
            if a["published"][t] != c["published"][t] and not t.startswith("_")}
    assert diff == {}, _dq_diff(a, c)
