"""Ingest a generated clinic (kap.generator): reconciliation, fault codes, privacy, re-runs."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from kap.settings import Settings
from kap.pipeline import step_ingest
from ingest.reasons import RECORD_REASONS

generator = pytest.importorskip("kap.generator")
from test_ingest_loader import assert_no_identifiers, identifiers_in  # noqa: E402


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "landing"
    info = generator.generate(out, patients=40, days=120, seed=3, fault_rate=0.05)
    s = Settings.from_env(tmp_path_factory.mktemp("genhome") / "home")
    return out, info, s, step_ingest(out, s)


def test_generated_landing_reconciles(generated):
    out, info, s, summary = generated
    assert summary.ok, [f.detail for f in summary.files if f.status == "failed"]
    assert summary.totals["records_read"] == info["records"]
    con = duckdb.connect(str(s.warehouse), read_only=True)
    for path, read, acc, quar, dup, ign in con.execute(
            "SELECT path, records_read, records_accepted, records_quarantined, records_duplicate, "
            "records_ignored FROM raw.ingest_files").fetchall():
        assert read == acc + quar + dup + ign, path
    reasons = {r[0] for r in con.execute("SELECT DISTINCT reason_code FROM raw.quarantine").fetchall()}
    n_events = con.execute("SELECT count(*) FROM raw.events").fetchone()[0]
    con.close()
    # the generator injects every record-level fault kind when fault_rate > 0
    assert reasons == set(RECORD_REASONS)
    assert n_events == summary.totals["events_added"]


def test_generated_identifiers_never_stored(generated):
    out, _, s, _ = generated
    ids = identifiers_in(out)
    assert len(ids) > 100
    assert_no_identifiers(s, ids)


def test_generated_rerun_adds_nothing(generated):
    out, _, s, _ = generated
    again = step_ingest(out, s)
    assert again.totals["events_added"] == 0 and again.totals["files_skipped"] == len(again.files)
    assert json.loads(json.dumps(again.to_dict()))["totals"]["files_skipped"] == len(again.files)
