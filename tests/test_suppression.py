"""Complementary suppression (kap.suppression), on hand-worked tables, and in the run report.

A suppressed cell must never be a shown total minus shown cells. Each table below is worked by
hand in its docstring.
"""
from __future__ import annotations

from kap.report import _response_hidden
from kap.suppression import complementary_suppression, is_small


def _table(cells: dict[tuple[str, str], int]) -> tuple[dict, list]:
    """A two-way table with margins 'all' and its lines (every row and every column)."""
    rows = sorted({r for r, _ in cells if r != "all"})
    cols = sorted({c for _, c in cells if c != "all"})
    lines = [((r, "all"), [(r, c) for c in cols if (r, c) in cells]) for r in [*rows, "all"]]
    lines += [(("all", c), [(r, c) for r in rows if (r, c) in cells]) for c in [*cols, "all"]]
    return cells, lines


def test_small_cells_can_be_recovered_by_subtraction_no_more():
    """Row A: 7 + 3 = 10; row B: 8 + 9 = 17; columns x 15, y 12; total 27. Primary: A:y = 3.
    Round 1: row A has one hidden entry (10 - 7 gives 3) -> hide A:x (7, its only other cell);
    column y too (12 - 9 gives 3) -> hide B:y (9). Round 2: row B (17 - 9) -> hide B:x (8);
    column x (15 - 8) -> hide B:x, the same. Round 3: every line has 0 or 2 hidden entries."""
    counts, lines = _table({("A", "x"): 7, ("A", "y"): 3, ("B", "x"): 8, ("B", "y"): 9,
                            ("A", "all"): 10, ("B", "all"): 17, ("all", "x"): 15, ("all", "y"): 12,
                            ("all", "all"): 27})
    hidden = complementary_suppression(counts, lines)
    assert hidden == {("A", "x"), ("A", "y"), ("B", "x"), ("B", "y")}
    for total, cells in lines:                 # no line leaves exactly one unknown
        assert sum(1 for e in [total, *cells] if e in hidden) != 1


def test_the_smallest_other_cell_is_chosen_and_a_table_without_small_cells_is_untouched():
    """Row A: 2 + 12 + 6 = 20, row B: 20 + 30 + 40 = 90; columns x 22, y 42, z 46. Primary: A:x.
    Round 1: row A hides its smallest shown cell A:z (6, not A:y 12); column x hides B:x (20).
    Round 2: row B (one hidden, B:x) hides B:y (30 < 40); column z (A:z) hides B:z (40).
    Round 3: column y (B:y alone) hides A:y. Round 4: nothing left with one hidden entry: all
    six cells hidden, the margins shown (each row and column has 2 or 3 unknowns)."""
    counts, lines = _table({("A", "x"): 2, ("A", "y"): 12, ("A", "z"): 6,
                            ("B", "x"): 20, ("B", "y"): 30, ("B", "z"): 40,
                            ("A", "all"): 20, ("B", "all"): 90,
                            ("all", "x"): 22, ("all", "y"): 42, ("all", "z"): 46, ("all", "all"): 110})
    hidden = complementary_suppression(counts, lines)
    assert hidden == {(r, c) for r in "AB" for c in "xyz"}
    assert not {("A", "all"), ("B", "all"), ("all", "all")} & hidden, "margins with cells left stay shown"
    for total, cells in lines:
        assert sum(1 for e in [total, *cells] if e in hidden) != 1
    clean, clean_lines = _table({("A", "x"): 6, ("A", "all"): 6, ("all", "x"): 6, ("all", "all"): 6})
    assert complementary_suppression(clean, clean_lines) == set()


def test_zero_is_not_small():
    assert not is_small(0) and is_small(1) and is_small(5) and not is_small(6)


def test_run_report_week_whose_non_responders_are_few_hides_responders_too():
    """12 scored, 9 responding: 3 not responding is a small cell that 12 - 9 would give back, so
    'responding' is hidden too. 12 scored, 3 responding: responding is small on its own (and the
    9 not responding are not shown). 20 scored, 10 responding: nothing hidden. 4 scored: small."""
    assert _response_hidden(12, 9) == {"not_responding", "responding"}
    assert _response_hidden(12, 3) == {"responding", "not_responding"}
    assert _response_hidden(20, 10) == set()
    assert "scored" in _response_hidden(4, 2)
