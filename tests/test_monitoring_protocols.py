"""Monitoring completeness per route and per clinic protocol (DOMAIN.md section 4).

The oracle here is the section 4 table written out in Python, applied to the dosing log the
generator wrote; `dosing_safety` (seed monitoring_protocols, defaults) must agree with it on every
session, and the generator must plant sessions that break each route's rule.
"""
from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from kap import pipeline
from kap.generator import generate
from kap.settings import Settings

# route -> (BP readings required, minimum observation minutes, counted from, SpO2, REMS form)
TABLE = {
    "IN": (("pre", "40min", "discharge"), 120, "start", True, True),
    "IV": (("pre", "40min", "discharge"), 30, "end", True, False),
    "IM": (("pre", "discharge"), 30, "start", True, False),
    "SL": (("pre", "discharge"), 60, "start", False, False),
    "PO": (("pre", "discharge"), 60, "start", False, False),
}
CLINIC = {"patients": 200, "days": 150, "seed": 4, "fault_rate": 0.0}


def _at(text: str) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc) if text else None


def expected_gaps(row: dict[str, str]) -> list[str] | None:
    """The unmet requirements of the row's default rule; None when the rule leaves it out."""
    route, setting = row["route"], row.get("setting") or "office"
    if route in ("SL", "PO") and setting != "office":
        return None
    readings, minimum, anchor, spo2, rems = TABLE[route]
    gaps = [f"bp_{r}" for r in readings
            if not (row[f"bp_{r}_systolic"] and row[f"bp_{r}_diastolic"])]
    start, end, monitored = _at(row["start_at"]), _at(row["end_at"]), _at(row["monitoring_end_at"])
    since = (end or start) if anchor == "end" else start
    if monitored is None or (monitored - since).total_seconds() / 60 < minimum:
        gaps.append("observation")
    if spo2 and not row["spo2_min"]:
        gaps.append("spo2")
    if rems:
        submitted = row["rems_form_submitted_on"]
        days = (dt.date.fromisoformat(submitted) - start.date()).days if submitted else None
        if days is None or not 0 <= days <= 7:
            gaps.append("rems_form")
    return gaps


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("monitoring") / "generated"
    generate(out, **CLINIC)
    return out


@pytest.fixture(scope="module")
def log_rows(clinic: Path) -> list[dict[str, str]]:
    with (clinic / "dosing" / "dosing_log.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_generator_plants_sessions_that_break_each_routes_rule(log_rows: list[dict[str, str]]) -> None:
    broken: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    excluded = 0
    for row in log_rows:
        gaps = expected_gaps(row)
        if gaps is None:
            excluded += 1
        elif gaps:
            broken[row["route"]] += 1
        else:
            kept[row["route"]] += 1
    assert set(broken) == set(TABLE), f"a route without a broken session: {broken}"
    assert set(kept) == set(TABLE), f"a route without a complete session: {kept}"
    assert excluded > 0, "no SL/PO session taken at home"
    # mostly complete when sessions follow their protocol: IV well above half
    assert kept["IV"] > 0.75 * (kept["IV"] + broken["IV"])
    lapses = Counter(g for row in log_rows for g in (expected_gaps(row) or []))
    assert {"bp_pre", "bp_40min", "bp_discharge", "observation", "spo2", "rems_form"} <= set(lapses)


def test_monitoring_flags_catch_exactly_the_sessions_that_break_their_rule(
        clinic: Path, log_rows: list[dict[str, str]], tmp_path: Path) -> None:
    # the dosing log alone (with the patients it names): no EHR vitals fill in what the log lacks
    landing = tmp_path / "landing"
    (landing / "ehr").mkdir(parents=True)
    for kind in ("Patient", "Organization", "Location"):      # the patients and clinics it names
        for part in (clinic / "ehr").glob(f"{kind}.*.ndjson"):
            shutil.copy(part, landing / "ehr" / part.name)
    shutil.copytree(clinic / "dosing", landing / "dosing")
    settings = Settings(home=(tmp_path / "home").resolve()).ensure_dirs()
    pipeline.step_ingest(landing, settings)
    pipeline.step_build(settings)

    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        got = {dosing_id: (complete, gaps, rule) for dosing_id, complete, gaps, rule in con.execute("""
            SELECT k.source_id, s.is_monitoring_complete, s.monitoring_gaps, s.monitoring_rule
            FROM marts.dosing_safety AS s
            JOIN intermediate.int_dose_series AS u USING (dose_key)
            JOIN restricted.source_record_keys AS k   -- the published dosing_id is a surrogate
                ON k.entity = 'dosing' AND k.surrogate_id = u.dosing_id""").fetchall()}
    assert set(got) == {r["dosing_id"] for r in log_rows}
    for row in log_rows:
        gaps = expected_gaps(row)
        complete, got_gaps, rule = got[row["dosing_id"]]
        if gaps is None:
            assert (complete, got_gaps, rule) == (None, None, "sl_po_home_excluded"), row["dosing_id"]
        else:
            assert complete == (not gaps), (row["dosing_id"], gaps, got_gaps)
            assert (got_gaps or "") == ", ".join(gaps), row["dosing_id"]
            assert rule is not None


def _landing_with(clinic: Path, root: Path, header: list[str], rows: list[list[str]]) -> Path:
    (root / "ehr").mkdir(parents=True)
    (root / "dosing").mkdir()
    for kind in ("Patient", "Organization", "Location"):      # the patients and clinics it names
        for part in (clinic / "ehr").glob(f"{kind}.*.ndjson"):
            shutil.copy(part, root / "ehr" / part.name)
    with (root / "dosing" / "log.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return root


def test_a_dosing_log_without_the_setting_column_still_ingests(
        clinic: Path, log_rows: list[dict[str, str]], tmp_path: Path) -> None:
    header = [c for c in log_rows[0] if c != "setting"]
    rows = [[r[c] for c in header] for r in log_rows[:40]]
    landing = _landing_with(clinic, tmp_path / "landing", header, rows)
    settings = Settings(home=(tmp_path / "home").resolve()).ensure_dirs()
    pipeline.step_ingest(landing, settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        accepted, quarantined = con.execute("""SELECT records_accepted, records_quarantined
            FROM raw.ingest_files WHERE source = 'dosing'""").fetchone()
        settings_seen = con.execute("""SELECT DISTINCT payload->>'$.setting' FROM raw.events
            WHERE event_type = 'dose_administered'""").fetchall()
    assert (accepted, quarantined) == (40, 0)
    assert settings_seen == [(None,)]


def test_an_unknown_setting_is_quarantined_and_known_ones_are_kept_case_blind(
        clinic: Path, log_rows: list[dict[str, str]], tmp_path: Path) -> None:
    header = list(log_rows[0])
    rows = [[r[c] for c in header] for r in log_rows[:3]]
    rows[0][header.index("setting")] = "garage"
    rows[1][header.index("setting")] = "Home"
    rows[2][header.index("setting")] = ""
    landing = _landing_with(clinic, tmp_path / "landing", header, rows)
    settings = Settings(home=(tmp_path / "home").resolve()).ensure_dirs()
    pipeline.step_ingest(landing, settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        quarantined = con.execute("SELECT reason_code, detail FROM raw.quarantine").fetchall()
        kept = sorted(con.execute("""SELECT source_record_id, payload->>'$.setting' FROM raw.events
            WHERE event_type = 'dose_administered'""").fetchall(), key=lambda r: r[0])
    assert quarantined == [("invalid_code", "setting")]
    assert kept == sorted([(rows[1][0], "home"), (rows[2][0], None)])
