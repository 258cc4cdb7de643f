"""Uniqueness and not-null checks hand GX a number or a flag per row instead of the value (a
64-character id on millions of events). The verdicts, counts and failing keys must be those of
the values themselves: hand-counted here, with NULLs, ties and a threshold."""
from __future__ import annotations

import duckdb
import pytest

from kap.quality.catalogue import Check
from kap.quality.runner import check_sql, run_check

ROWS = [("k1", "a"), ("k2", "b"), ("k3", "a"), ("k4", None), ("k5", None), ("k6", "c"), ("k7", "b"),
        ("k8", "d" * 64)]


def _check(kind: str, threshold: float = 0.0) -> Check:
    return Check(check_id=f"t_{kind}", stage="marts", target="marts.t_frames", column="v", check_type=kind,
                 kahn_category="plausibility", severity="critical", threshold_pct=threshold, params="",
                 where="", note="")


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("CREATE SCHEMA marts")
    c.execute("CREATE TABLE marts.t_frames (k VARCHAR, v VARCHAR)")
    c.executemany("INSERT INTO marts.t_frames VALUES (?, ?)", ROWS)
    return c


def test_unique_fails_on_every_row_of_a_repeated_value_and_never_on_nulls(con):
    result = run_check(con, _check("unique"), "run-1", None)
    # a and b appear twice: 4 rows; the two NULLs are not values, so not duplicates;
    # checked rows are the 6 with a value
    assert (result.status, result.rows_checked, result.rows_failed) == ("failed", 6, 4)
    assert result.failing_keys_sample == ["k1", "k2", "k3", "k7"]


def test_unique_passes_within_its_threshold(con):
    # 4 of 6 rows is 66.7 %: a 70 % threshold lets it pass, 60 % does not
    assert run_check(con, _check("unique", 70.0), "run-1", None).status == "passed"
    assert run_check(con, _check("unique", 60.0), "run-1", None).status == "failed"


def test_not_null_counts_the_missing_values(con):
    result = run_check(con, _check("not_null"), "run-1", None)
    assert (result.status, result.rows_checked, result.rows_failed) == ("failed", 8, 2)
    assert result.failing_keys_sample == ["k4", "k5"]


def test_the_frames_carry_no_value(con):
    for kind in ("unique", "not_null"):
        frame = con.execute(check_sql(_check(kind), "run-1", None, ["k", "v"])).df()
        assert not frame["v"].astype(str).str.contains("a|b|c|d").any(), kind
