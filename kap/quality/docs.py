"""docs/quality.md, rendered from the check catalogue so the page and the checks never drift."""
from __future__ import annotations

from collections import Counter

from kap.quality.catalogue import load_catalogue

INTRO = """# Data quality: what guards what

Generated from `expectations/checks.csv` by `kap docs`; do not edit by hand.

Three guards stand between a clinic's export and `analytics.duckdb`. Each has its own job, so a
rule is checked once, where it belongs:

| guard | where | what it guards | on failure |
|---|---|---|---|
| ingest validation | `ingest/sources/*.py` | one record at a time: parseable, required fields, types, value sets, plausible ranges, known patient, possible times, duplicates | the record goes to `raw.quarantine` with a reason code; the rest of the file goes on |
| landing checks (Great Expectations, stage `landing`) | this catalogue | what one run ingested, as a whole: reconciliation of every file, quarantine share per file and reason, schema rejections, volume against recent runs, completeness and plausibility of the accepted events | critical: the run stops before publishing; warning: recorded and published |
| dbt tests | `dbt_project/models/**/_*__models.yml`, `_*__unit_tests.yml` | the models' own logic: keys unique and not null, relationships between models, and every clinical rule pinned by unit tests with hand-worked values | a key test (severity error) fails the build; softer rules warn |
| mart checks (Great Expectations, stage `marts`) | this catalogue | what analysts will read: plausible values, temporal order, completeness and small-cell suppression in the published tables | critical: nothing is published and the last good `analytics.duckdb` stays |

Why both dbt tests and mart checks look at keys: dbt's key tests stop a broken model during the
build, while the mart checks record the result as data (`dq.check_results`, published as
`dq_results`) with the failing keys, so an analyst can see it. Other rules are not repeated.

A check fails when more than `threshold %` of the rows it looks at fail. Results are
reproducible: "now" inside a check is the `as_of` of the build or the run's ingest time, never
the wall clock. Every run writes an offline HTML report to `KAP_HOME/dq/` (`latest.html`).

To add a check, add a row to `expectations/checks.csv` (the columns are described in
`kap/quality/catalogue.py`), then `kap docs`; the test suite makes every check fail once on
purpose.
"""


def render_markdown() -> str:
    checks = load_catalogue()
    tally = Counter((c.stage, c.severity) for c in checks)
    kahn = Counter(c.kahn_category for c in checks)
    lines = [INTRO, "## The catalogue", "",
             f"{len(checks)} checks: " + ", ".join(f"{stage} {sev} {n}" for (stage, sev), n in sorted(tally.items()))
             + "; by Kahn category: " + ", ".join(f"{k} {n}" for k, n in sorted(kahn.items())) + ".", ""]
    for stage in ("landing", "marts"):
        lines += [f"### Stage `{stage}`", "",
                  "| check | target | column | type | Kahn | severity | threshold % | why |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in checks:
            if c.stage != stage:
                continue
            note = c.note.replace("|", "\\|")
            lines.append(f"| `{c.check_id}` | {c.target} | {c.column} | {c.check_type} | {c.kahn_category} "
                         f"| {c.severity} | {c.threshold_pct:g} | {note} |")
        lines.append("")
    return "\n".join(lines)
