"""Small-cell suppression with complementary suppression, for tables shown outside the warehouse.

DOMAIN.md section 6: a count of 1 to 5 people is not shown (0 is). Suppressing single cells is not
enough where a total is shown: total minus the shown cells gives the hidden one back. The rule
(ours, the same as the dbt macro kap_complementary_suppression):

- a *line* is a total and the cells that add up to it (a row, a column, or "responding" and "not
  responding" adding up to "scored");
- a line with exactly one hidden entry (a cell or its total) gives it away, so its smallest shown
  cell is hidden too (by count, then by name; the total only when no cell is left shown);
- this repeats until no line has exactly one hidden entry.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

SMALL_CELL = 5  # counts of 1 to this many people are suppressed


def is_small(n: int | None) -> bool:
    return n is not None and 0 < n <= SMALL_CELL


def complementary_suppression(counts: Mapping[Hashable, int | None],
                              lines: Iterable[tuple[Hashable, Iterable[Hashable]]],
                              hidden: Iterable[Hashable] | None = None) -> set[Hashable]:
    """The cells to hide. counts: cell -> count; lines: (total cell, [cells adding up to it]);
    hidden: the cells hidden on their own (default: the small counts)."""
    lines = [(total, list(cells)) for total, cells in lines]
    out = set(hidden) if hidden is not None else {k for k, n in counts.items() if is_small(n)}
    while True:                      # rounds: every line looks at the previous round's state
        picks = set()
        for total, cells in lines:
            if sum(1 for e in (total, *cells) if e in out) != 1:
                continue
            shown_cells = sorted((c for c in cells if c not in out), key=lambda c: (counts.get(c) or 0, str(c)))
            picks.add(shown_cells[0] if shown_cells else total)
        if not picks:
            return out
        out |= picks
