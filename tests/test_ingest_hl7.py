"""The official HL7 FHIR R4 examples (CC0, hl7.fhir.r4.examples@4.0.1): real-world messiness.

A subset (tests/fixtures/hl7_examples, built by make_subset.py) ingests without a crash and every
record is accounted for: most land in quarantine (unknown patients, codes we do not read) or are
ignored (foreign types). The whole package was run once by hand (see the ingest README notes).
"""
from __future__ import annotations

from pathlib import Path

import duckdb

from kap.settings import Settings
from kap.pipeline import step_ingest

HL7 = Path(__file__).parent / "fixtures" / "hl7_examples"


def test_hl7_examples_ingest_and_reconcile(tmp_path):
    s = Settings.from_env(tmp_path / "home")
    r = step_ingest(HL7, s)
    assert r.ok, [f.detail for f in r.files if f.status == "failed"]
    assert all(f.status == "ingested" for f in r.files)
    t = r.totals
    lines = sum(1 for p in (HL7 / "ehr").glob("*.ndjson") for ln in p.read_text().splitlines() if ln.strip())
    assert t["records_read"] == lines
    assert t["records_read"] == (t["records_accepted"] + t["records_quarantined"] + t["records_duplicate"]
                                 + t["records_ignored"])
    assert t["records_accepted"] > 10 and t["records_ignored"] >= 6 and t["records_quarantined"] > 10
    con = duckdb.connect(str(s.warehouse), read_only=True)
    types = {r[0] for r in con.execute("SELECT DISTINCT event_type FROM raw.events").fetchall()}
    reasons = {r[0] for r in con.execute("SELECT DISTINCT reason_code FROM raw.quarantine").fetchall()}
    # contained resources, absolute-URL references, narrative, extensions: no crash, all counted
    assert {"patient_registered", "clinic_registered", "staff_registered"} <= types
    assert {"unknown_patient", "unknown_instrument", "missing_required_field"} <= reasons
    names = con.execute("SELECT count(*) FROM raw.quarantine WHERE raw_record LIKE '%Chalmers%' "
                        "OR raw_record LIKE '%Cathy Jones%'").fetchone()[0]
    assert names == 0
    con.close()
