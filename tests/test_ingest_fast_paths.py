"""The ingest fast paths keep results identical: SQL built per resource type (with its retry for
files holding other types), no PRIMARY KEY on raw.events (uniqueness by the loader's anti-join)."""
from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from kap.settings import Settings
from kap.pipeline import step_ingest
from ingest.sources import fhir

FIX = Path(__file__).parent / "fixtures" / "ingest"
LANDING = FIX / "landing"


def _rows(settings: Settings, sql: str):
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# (occurred_at / recorded_at default to the run's ingested_at when a record has none)
_EVENTS = """SELECT e.event_id, e.event_type, nullif(e.occurred_at, e.ingested_at),
                    nullif(e.recorded_at, e.ingested_at), e.source_record_id,
                    e.payload::VARCHAR, f.path
             FROM raw.events e JOIN raw.ingest_files f USING (file_id) ORDER BY ALL"""
_QUAR = """SELECT f.path, q.line_number, q.reason_code, q.detail, q.raw_record
           FROM raw.quarantine q JOIN raw.ingest_files f USING (file_id) ORDER BY ALL"""


def test_file_resource_types():
    assert fhir.file_resource_types("Observation.000.ndjson") == ("Observation",)
    assert fhir.file_resource_types("Practitioner.000.ndjson") == ("Practitioner",)
    assert fhir.file_resource_types("Medication.000.ndjson") == ()
    assert fhir.file_resource_types("bulk-export_1.ndjson") is None


def test_types_from_file_name_do_not_change_results(tmp_path):
    """Every EHR file renamed so its name says nothing (all types planned) vs. named by type, and
    each file's lines put under a wrong type's name (the retry path): same events, same quarantine."""
    named = Settings.from_env(tmp_path / "named")
    step_ingest(LANDING, named)

    anon = tmp_path / "anon"
    wrong = tmp_path / "wrong"
    shutil.copytree(LANDING, anon)
    shutil.copytree(LANDING, wrong)
    for p in sorted((anon / "ehr").rglob("*.ndjson")):
        if not p.name.startswith("Patient"):      # Patient files keep going first
            p.rename(p.with_name("zz-" + p.name))
    for i, p in enumerate(sorted((wrong / "ehr").rglob("*.ndjson"))):
        if not p.name.startswith("Patient"):      # "Encounter.003-Observation.000.ndjson", in order
            p.rename(p.with_name(f"Encounter.{i:03d}-{p.name}"))
    results = {}
    for name, landing in (("anon", anon), ("wrong", wrong)):
        s = Settings.from_env(tmp_path / f"home_{name}")
        assert step_ingest(landing, s).ok
        results[name] = s
    strip = lambda rows: sorted(r[:-1] for r in rows)   # noqa: E731  (paths differ)
    base_e, base_q = strip(_rows(named, _EVENTS)), strip(_rows(named, _QUAR))
    assert base_e
    for s in results.values():
        assert strip(_rows(s, _EVENTS)) == base_e
        assert strip(_rows(s, _QUAR)) == base_q


def test_reingest_adds_no_duplicate_event_ids(tmp_path):
    """raw.events has no PRIMARY KEY: the loader alone keeps event_id unique. The same records
    re-exported in new files (new sha256) become duplicates, never second events."""
    s = Settings.from_env(tmp_path / "home")
    first = step_ingest(LANDING, s)
    again = tmp_path / "again"
    shutil.copytree(LANDING, again)
    for p in sorted(again.rglob("*")):
        if p.is_file():
            with open(p, "ab") as f:         # a trailing newline: new bytes, same records
                f.write(b"\n")
    second = step_ingest(again, s)
    assert second.totals["files_ingested"] == first.totals["files_ingested"]
    assert second.totals["events_added"] == 0
    assert second.totals["records_duplicate"] > 0
    n, distinct = _rows(s, "SELECT count(*), count(DISTINCT event_id) FROM raw.events")[0]
    assert n == distinct == first.totals["events_added"]
    assert not _rows(s, """SELECT 1 FROM duckdb_constraints()
                           WHERE schema_name = 'raw' AND table_name = 'events'
                             AND constraint_type = 'PRIMARY KEY'""")
