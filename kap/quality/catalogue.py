"""The check catalogue: `expectations/checks.csv`, one row per check (OHDSI DQD style).

Columns: check_id, stage (landing | marts), target (landing.<view> or marts.<table>), column,
check_type, kahn_category (conformance | completeness | plausibility), severity (critical |
warning), threshold_pct (share of checked rows allowed to fail), params, where (an optional SQL
filter: which rows the check applies to), note (why the check exists).

Check types and their params:
  not_null        -                         column has no NULL
  unique          -                         column (or "a,b" compound) has no duplicate
  in_set          a|b|c  or  @event_types   values are in the set (NULLs pass: see not_null)
  between         min..max                  numeric range, inclusive (NULLs pass)
  condition       SQL boolean expression    every row satisfies it (NULL result fails); may use
                                            :now and :run_id and sub-queries on other tables
  row_count_min   n                         the target has at least n rows
Adding a check is adding a row.
"""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

from kap.settings import EXPECTATIONS_DIR

CATALOGUE_PATH = EXPECTATIONS_DIR / "checks.csv"

STAGES = ("landing", "marts")
CHECK_TYPES = ("not_null", "unique", "in_set", "between", "condition", "row_count_min")
KAHN_CATEGORIES = ("conformance", "completeness", "plausibility")
SEVERITIES = ("critical", "warning")
COLUMNS = ("check_id", "stage", "target", "column", "check_type", "kahn_category", "severity",
           "threshold_pct", "params", "where", "note")


class CatalogueError(ValueError):
    """A malformed row in the check catalogue."""


@dataclass(frozen=True)
class Check:
    check_id: str
    stage: str
    target: str
    column: str
    check_type: str
    kahn_category: str
    severity: str
    threshold_pct: float
    params: str
    where: str
    note: str

    @property
    def columns(self) -> list[str]:
        return [c.strip() for c in self.column.split(",") if c.strip()]

    def value_set(self) -> list[str]:
        if self.params.strip() == "@event_types":
            from ingest.events import BY_NAME

            return sorted(BY_NAME)
        return [v.strip() for v in self.params.split("|") if v.strip()]

    def bounds(self) -> tuple[float | None, float | None]:
        low, _, high = self.params.partition("..")
        return (float(low) if low.strip() else None, float(high) if high.strip() else None)

    def to_dict(self) -> dict:
        return asdict(self)


def _validate_row(row: dict, line: int) -> Check:
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise CatalogueError(f"checks.csv line {line}: missing columns {missing}")
    if None in row:
        raise CatalogueError(f"checks.csv line {line}: too many fields (quote values with commas)")
    vals = {k: (row[k] or "").strip() for k in COLUMNS}
    where = f"checks.csv line {line} ({vals['check_id'] or '?'})"
    if not vals["check_id"]:
        raise CatalogueError(f"{where}: empty check_id")
    for key, allowed in (("stage", STAGES), ("check_type", CHECK_TYPES),
                         ("kahn_category", KAHN_CATEGORIES), ("severity", SEVERITIES)):
        if vals[key] not in allowed:
            raise CatalogueError(f"{where}: {key} {vals[key]!r} not in {allowed}")
    if not (vals["target"].startswith("landing.") or vals["target"].startswith("marts.")):
        raise CatalogueError(f"{where}: target must be landing.<view> or marts.<table>")
    if vals["target"].split(".")[0] != vals["stage"]:
        raise CatalogueError(f"{where}: target {vals['target']} does not belong to stage {vals['stage']}")
    if vals["check_type"] != "row_count_min" and not vals["column"]:
        raise CatalogueError(f"{where}: a {vals['check_type']} check needs a column")
    if vals["check_type"] in ("in_set", "between", "condition", "row_count_min") and not vals["params"]:
        raise CatalogueError(f"{where}: a {vals['check_type']} check needs params")
    if vals["check_type"] == "between" and ".." not in vals["params"]:
        raise CatalogueError(f"{where}: between params are min..max")
    try:
        threshold = float(vals["threshold_pct"] or 0)
    except ValueError:
        raise CatalogueError(f"{where}: threshold_pct {vals['threshold_pct']!r} is not a number") from None
    if not 0 <= threshold <= 100:
        raise CatalogueError(f"{where}: threshold_pct must be within 0-100")
    vals["threshold_pct"] = threshold
    return Check(**vals)


def load_catalogue(path: Path | None = None, stage: str | None = None) -> list[Check]:
    """Read and validate the catalogue; optionally only one stage's checks."""
    path = Path(path or CATALOGUE_PATH)
    with path.open(newline="", encoding="utf-8") as handle:
        checks = [_validate_row(row, i + 2) for i, row in enumerate(csv.DictReader(handle))]
    seen: set[str] = set()
    for check in checks:
        if check.check_id in seen:
            raise CatalogueError(f"checks.csv: duplicate check_id {check.check_id}")
        seen.add(check.check_id)
    from kap.quality.targets import LANDING_VIEWS

    for check in checks:
        if check.stage == "landing" and check.target.split(".", 1)[1] not in LANDING_VIEWS:
            raise CatalogueError(f"checks.csv ({check.check_id}): unknown landing view {check.target}")
    return [c for c in checks if stage is None or c.stage == stage]
