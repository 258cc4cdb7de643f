"""Every check in expectations/checks.csv fails on the smallest fault made for it, and good data
passes every check: a check that cannot fail, or fails on good data, is a bug in the catalogue."""
from __future__ import annotations

import csv

import pytest

from kap.settings import EXPECTATIONS_DIR
from kap.quality import CatalogueError, load_catalogue
from kap.quality.runner import run_check, run_checks
from test_quality_data import (NOW, RUN, break_landing, break_marts, good_landing, good_marts,
                               memory_warehouse)

CATALOGUE = load_catalogue()


def test_catalogue_rows_are_complete_and_classified():
    assert len(CATALOGUE) >= 100
    for check in CATALOGUE:
        assert check.note, check.check_id
        assert check.kahn_category in ("conformance", "completeness", "plausibility")
        assert check.severity in ("critical", "warning")
    assert {c.stage for c in CATALOGUE} == {"landing", "marts"}


def test_a_malformed_catalogue_row_is_refused(tmp_path):
    path = tmp_path / "checks.csv"
    with (EXPECTATIONS_DIR / "checks.csv").open() as src:
        rows = list(csv.DictReader(src))
    rows[0]["severity"] = "fatal"
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(CatalogueError, match="severity"):
        load_catalogue(path)


def test_good_data_passes_every_check():
    con = memory_warehouse()
    good_landing(con)
    good_marts(con)
    results = run_checks(con, CATALOGUE, RUN, NOW)
    bad = {r.check_id: (r.status, r.detail) for r in results if r.status != "passed"}
    assert bad == {}


@pytest.mark.parametrize("check", CATALOGUE, ids=[c.check_id for c in CATALOGUE])
def test_each_check_fails_on_its_fault(check):
    con = memory_warehouse()
    if check.stage == "landing":
        break_landing(con, check)
    else:
        break_marts(con, check)
    result = run_check(con, check, RUN, NOW)
    assert result.status == "failed", (result.status, result.detail)
    assert result.rows_failed >= 1
    assert result.pct_failed > check.threshold_pct
    if check.check_type != "row_count_min":
        assert result.failing_keys_sample, "a failure names the keys of failing rows"


def test_a_check_on_a_missing_mart_is_not_run_and_visible():
    con = memory_warehouse()
    check = next(c for c in CATALOGUE if c.target == "marts.care_pathways" and c.severity == "critical")
    result = run_check(con, check, RUN, NOW)
    assert result.status == "not_run"
    assert "does not exist" in result.detail
    assert result.severity == "warning"


def test_a_check_on_a_missing_column_is_not_run():
    con = memory_warehouse()
    good_marts(con)
    con.execute("ALTER TABLE marts.assessments DROP COLUMN score")
    check = next(c for c in CATALOGUE if c.check_id == "marts_assessments_score_not_null")
    result = run_check(con, check, RUN, NOW)
    assert result.status == "not_run" and "score" in result.detail


def test_future_dates_are_judged_against_as_of_not_the_clock():
    con = memory_warehouse()
    good_marts(con)
    check = next(c for c in CATALOGUE if c.check_id == "marts_dosing_sessions_not_after_as_of")
    assert run_check(con, check, RUN, "2025-06-01 00:00:00").status == "passed"
    assert run_check(con, check, RUN, "2025-01-05 00:00:00").status == "failed"
