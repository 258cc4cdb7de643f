"""The analysts' table dictionary, `docs/analyst/tables.md`, generated from the dbt YAML.

Every published mart (the contract's tables, `kap.quality.targets.MART_TABLES`) is documented in
`dbt_project/models/marts/*.yml`: grain, primary key, description and one description per column.
`render_markdown()` turns exactly those tables, plus the two tables `kap.publish` adds to
`analytics.duckdb` (`dq_results`, `publish_runs`, documented here because dbt does not build them),
into one Markdown page. The output depends only on the YAML and this module (no timestamps, no
database), so a test can assert that the committed page equals a fresh rendering.

    python -m kap.docs.dictionary            # rewrite docs/analyst/tables.md
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from kap.settings import DBT_PROJECT_DIR, PROJECT_ROOT
from kap.quality.targets import MART_TABLES

TABLES_MD = PROJECT_ROOT / "docs" / "analyst" / "tables.md"
MARTS_SUBDIR = Path("models") / "marts"

# Tables kap/publish.py writes next to the marts. Keep in step with kap/quality/store.py
# (dq.check_results) and kap/publish.py (publish_runs).
PUBLISH_TABLES: tuple[dict[str, Any], ...] = (
    {
        "name": "dq_results",
        "grain": "one row per data-quality check and stage (stage, check_id) of the published validation runs",
        "primary_key": ["stage", "check_id"],
        "description": (
            "Data-quality results published with the file: for each stage (landing, marts) the results of "
            "the validation run of the publishing run (else that stage's latest validation). One row per "
            "check of the catalogue expectations/checks.csv (OHDSI DQD style, Kahn categories). Written by "
            "kap/publish.py from the warehouse's dq.check_results; not a dbt model."),
        "columns": [
            ("run_id", "The validation run the result belongs to."),
            ("stage", "landing (the run's landing files, checked in the restricted warehouse) | marts (the built marts)."),
            ("check_id", "The check's id in expectations/checks.csv."),
            ("target", "What was checked: landing.<view> or marts.<table>."),
            ("column", "Column(s) checked (a quoted identifier in SQL: \"column\")."),
            ("check_type", "not_null | unique | in_set | between | condition | row_count_min."),
            ("kahn_category", "conformance | completeness | plausibility (Kahn et al. data-quality framework)."),
            ("severity", "critical (a failure stops the nightly run before publishing) | warning (reported, the run goes on). A check that could not run is reported as warning."),
            ("status", "passed | failed | not_run (the check could not run: never counted as passed)."),
            ("rows_checked", "Rows the check looked at."),
            ("rows_failed", "Rows that failed it."),
            ("pct_failed", "rows_failed / rows_checked x 100."),
            ("threshold_pct", "Share of checked rows (%) allowed to fail before the check fails."),
            ("failing_keys_sample", "JSON list of up to 10 keys of failing rows (surrogate keys, file paths or ids; no identifiers)."),
            ("note", "Why the check exists."),
            ("location", "Where the failing rows are (some in the restricted warehouse: ask the data engineer)."),
            ("detail", "What failed, or why the check did not run."),
        ],
    },
    {
        "name": "publish_runs",
        "grain": "one row per published table (table_name) of the run that wrote the file",
        "primary_key": ["run_id", "table_name"],
        "description": (
            "Which snapshot this file is: the run that published it, its as-of, when it was published and "
            "the row count of every table in it. Written by kap/publish.py; not a dbt model."),
        "columns": [
            ("run_id", "The pipeline run that published the file (Airflow run id, or manual__<UTC time> for kap run / kap publish)."),
            ("as_of", "The as_of the marts were built for (a look into the past); NULL for a normal run, whose \"now\" is care_pathways.as_of_at."),
            ("published_at", "When the file was written (UTC)."),
            ("table_name", "A table in this file (the marts, dq_results)."),
            ("row_count", "Rows in that table."),
            ("dq_runs", "JSON object stage -> validation run_id whose results dq_results holds."),
        ],
    },
)


def _load_models(project_dir: Path) -> dict[str, dict[str, Any]]:
    models: dict[str, dict[str, Any]] = {}
    for path in sorted((project_dir / MARTS_SUBDIR).glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for model in doc.get("models") or []:
            models[model["name"]] = model
    return models


def published_models(project_dir: Path | str = DBT_PROJECT_DIR) -> list[dict[str, Any]]:
    """The published tables in contract order, each as {name, grain, primary_key, description, columns}.

    `columns` is a list of (name, description). Raises ValueError when a published mart has no dbt
    YAML entry, since an undocumented published table is a contract breach.
    """
    models = _load_models(Path(project_dir))
    missing = [name for name in MART_TABLES if name not in models]
    if missing:
        raise ValueError(f"published marts without dbt YAML in {Path(project_dir) / MARTS_SUBDIR}: {missing}")
    tables: list[dict[str, Any]] = []
    for name in MART_TABLES:
        model = models[name]
        meta = model.get("meta") or (model.get("config") or {}).get("meta") or {}
        tables.append({
            "name": name,
            "grain": meta.get("grain", ""),
            "primary_key": list(meta.get("primary_key") or []),
            "description": model.get("description", ""),
            "columns": [(c["name"], c.get("description", "")) for c in model.get("columns") or []],
        })
    tables.extend({**t, "columns": list(t["columns"])} for t in PUBLISH_TABLES)
    return tables


def _text(value: str) -> str:
    """One line of Markdown: collapse whitespace, keep <...> visible (not an HTML tag)."""
    text = re.sub(r"\s+", " ", str(value or "")).strip()
    return text.replace("<", "\\<")


def _cell(value: str) -> str:
    return _text(value).replace("|", "\\|")


def render_markdown(project_dir: Path | str = DBT_PROJECT_DIR) -> str:
    """docs/analyst/tables.md: every published table with grain, description and column descriptions."""
    tables = published_models(project_dir)
    out: list[str] = [
        "# Table dictionary: analytics.duckdb",
        "",
        "<!-- Generated by kap/docs/dictionary.py from dbt_project/models/marts/*.yml. Do not edit by hand:",
        "     change the dbt YAML, then regenerate: `kap docs`. -->",
        "",
        "Every table in the published `analytics.duckdb`, with its grain and every column. The marts'",
        "text is their dbt YAML documentation; `dq_results` and `publish_runs` are written by the publish",
        "step. **(ours)** marks a definition that is the project's own rather than a published standard",
        "(see the shared DOMAIN notes, section 4). Column types: `DESCRIBE <table>;` in the DuckDB shell.",
        "See [README.md](README.md) for connecting and [questions.md](questions.md) for worked queries.",
        "",
        "| table | grain |",
        "|---|---|",
    ]
    for table in tables:
        out.append(f"| [`{table['name']}`](#{table['name']}) | {_cell(table['grain'])} |")
    for table in tables:
        out += ["", f"## {table['name']}", ""]
        out.append(f"**Grain:** {_text(table['grain'])}  ")
        if table["primary_key"]:
            out.append("**Key:** " + ", ".join(f"`{k}`" for k in table["primary_key"]) + "  ")
        out.append(f"**Columns:** {len(table['columns'])}")
        out += ["", _text(table["description"]), "", "| column | description |", "|---|---|"]
        for name, description in table["columns"]:
            out.append(f"| `{name}` | {_cell(description)} |")
    return "\n".join(out) + "\n"


def write_markdown(path: Path | str | None = None, project_dir: Path | str = DBT_PROJECT_DIR) -> Path:
    """Write render_markdown() to `path` (default docs/analyst/tables.md) and return the path."""
    target = Path(path) if path is not None else TABLES_MD
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_markdown(project_dir), encoding="utf-8")
    return target


if __name__ == "__main__":
    print(write_markdown())
