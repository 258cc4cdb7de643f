"""The analyst guide (docs/analyst/) runs as written.

One demo-like clinic (120 patients x 180 days, 1 % faults) goes through the nightly pipeline
(`kap.pipeline.run`) once per module; then every ```sql block of docs/analyst/*.md is executed
against the published analytics.duckdb twice: with the Python `duckdb` package (2.x, read-only)
and with the DuckDB 1.x shell (`.venv/bin/duckdb -readonly`), which is what BI drivers embed. Both
must succeed and agree on the row count; all but blocks marked `-- may return no rows` must return
rows. The Python examples run too (path pointed at the test build), and the table dictionary
(docs/analyst/tables.md) must equal a fresh `kap.docs.dictionary.render_markdown()` and cover every
published column.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from kap.settings import PROJECT_ROOT, Settings
from kap.docs.dictionary import TABLES_MD, published_models, render_markdown

pytestmark = pytest.mark.slow

GUIDE = PROJECT_ROOT / "docs" / "analyst"
DEMO = {"patients": 120, "days": 180, "seed": 42, "fault_rate": 0.01}
MAY_BE_EMPTY = "-- may return no rows"
FENCE = re.compile(r"^([ \t]*)```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^\1```[ \t]*$", re.S | re.M)
WALL_CLOCK = re.compile(r"\b(current_date|current_timestamp|now\s*\(|today\s*\(|get_current_time)", re.I)


def _blocks(lang: str) -> list[tuple[str, str]]:
    """(id, code) of every fenced block of `lang` in docs/analyst/*.md, id = file:block-number."""
    found = []
    for md in sorted(GUIDE.glob("*.md")):
        n = 0
        for match in FENCE.finditer(md.read_text(encoding="utf-8")):
            if match.group(2).lower() != lang:
                continue
            n += 1
            indent = match.group(1)
            code = "\n".join(line[len(indent):] if line.startswith(indent) else line
                             for line in match.group(3).splitlines())
            found.append((f"{md.name}:{lang}{n}", code.strip() + "\n"))
    return found


SQL_BLOCKS = _blocks("sql")
PY_BLOCKS = _blocks("python")


def _shell() -> str:
    """The DuckDB shell installed with the project (duckdb-cli, a 1.x build)."""
    local = Path(sys.executable).parent / "duckdb"
    path = str(local) if local.exists() else shutil.which("duckdb")
    if not path:
        pytest.skip("the DuckDB shell (duckdb-cli) is not installed")
    return path


@pytest.fixture(scope="module")
def analytics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """analytics.duckdb published by the nightly pipeline from a demo-like generated clinic."""
    from kap import pipeline
    from kap.generator import generate

    root = tmp_path_factory.mktemp("analyst_guide")
    landing = root / "landing"
    generate(landing, **DEMO)
    settings = Settings(home=(root / "kap_home").resolve()).ensure_dirs()
    summary = pipeline.run(landing, settings, run_id="analyst-guide", progress=lambda _msg: None)
    assert summary.published is not None and summary.published.exists()
    return summary.published


def _python_rows(path: Path, sql: str) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cursor = con.execute(sql)
        return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        con.close()


# --- the guide's shape ---------------------------------------------------------------------------

def test_guide_pages_exist_and_hold_the_examples():
    for page in ("README.md", "questions.md", "tables.md"):
        assert (GUIDE / page).is_file(), page
    questions = [b for b in SQL_BLOCKS if b[0].startswith("questions.md:")]
    assert len(questions) >= 12
    assert any(b[0].startswith("README.md:") for b in SQL_BLOCKS)
    assert PY_BLOCKS, "the README shows Python connections"


def test_twelve_questions_each_with_one_sql_block():
    text = (GUIDE / "questions.md").read_text(encoding="utf-8")
    sections = re.split(r"^## (?=\d+\. )", text, flags=re.M)[1:]
    assert len(sections) == 12
    for section in sections:
        title = section.splitlines()[0]
        assert len(re.findall(r"^```sql\s*$", section, re.M)) == 1, title


@pytest.mark.parametrize("block_id,sql", SQL_BLOCKS, ids=[b[0] for b in SQL_BLOCKS])
def test_sql_block_is_one_reproducible_statement(block_id, sql):
    assert len(duckdb.extract_statements(sql)) == 1, f"{block_id}: one statement per block"
    assert not WALL_CLOCK.search(sql), f"{block_id}: use the snapshot's as_of_at, not the wall clock"


# --- every SQL block runs against the published file ---------------------------------------------

@pytest.mark.parametrize("block_id,sql", SQL_BLOCKS, ids=[b[0] for b in SQL_BLOCKS])
def test_sql_block_runs_in_python_and_in_the_duckdb_1x_shell(analytics, block_id, sql):
    columns, rows = _python_rows(analytics, sql)
    assert len(columns) == len(set(columns)), f"{block_id}: duplicate column names {columns}"
    if MAY_BE_EMPTY not in sql:
        assert rows, f"{block_id} returned no rows on the demo build"

    shell = _shell()
    done = subprocess.run([shell, "-readonly", "-json", str(analytics), "-c", sql],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Error" not in done.stderr, f"{block_id}: {done.stderr}"
    out = done.stdout.strip()
    shell_rows = json.loads(out) if out else []
    assert len(shell_rows) == len(rows), f"{block_id}: shell and Python disagree on the row count"


def test_the_shell_is_a_1x_reader(analytics):
    """The point of running the blocks in the shell: a DuckDB 1.x reader, as BI drivers embed."""
    done = subprocess.run([_shell(), "--version"], capture_output=True, text=True, timeout=30)
    assert done.stdout.startswith("v1."), done.stdout


@pytest.mark.parametrize("block_id,code", PY_BLOCKS, ids=[b[0] for b in PY_BLOCKS])
def test_python_example_runs(analytics, block_id, code, capsys):
    assert "var/analytics.duckdb" in code, f"{block_id}: examples use the default path"
    exec(compile(code.replace("var/analytics.duckdb", analytics.as_posix()), block_id, "exec"), {})
    assert capsys.readouterr().out.strip(), f"{block_id} printed nothing"


def test_publish_runs_names_the_snapshot(analytics):
    _, rows = _python_rows(analytics, "SELECT DISTINCT run_id FROM publish_runs")
    assert rows == [("analyst-guide",)]


# --- the table dictionary --------------------------------------------------------------------------

def test_tables_md_is_regenerated_from_the_dbt_yaml():
    assert TABLES_MD == GUIDE / "tables.md"
    assert TABLES_MD.read_text(encoding="utf-8") == render_markdown(), (
        "docs/analyst/tables.md is stale: run `python -m kap.docs.dictionary` (or `kap docs`)")


def test_dictionary_documents_every_published_table_and_column(analytics):
    documented = {t["name"]: [c for c, _ in t["columns"]] for t in published_models()}
    con = duckdb.connect(str(analytics), read_only=True)
    try:
        published = {}
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables "
                                    "WHERE table_schema = 'main' ORDER BY table_name").fetchall():
            published[table] = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' "
                "AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()]
    finally:
        con.close()
    assert set(published) == set(documented)
    for table, columns in published.items():
        assert set(columns) == set(documented[table]), (
            f"{table}: undocumented {sorted(set(columns) - set(documented[table]))}, "
            f"documented but not published {sorted(set(documented[table]) - set(columns))}")
    for table in published_models():
        assert table["grain"] and table["description"], table["name"]
        assert all(desc.strip() for _, desc in table["columns"]), table["name"]


def test_render_markdown_refuses_an_undocumented_mart(tmp_path):
    marts = tmp_path / "models" / "marts"
    marts.mkdir(parents=True)
    (marts / "_marts__models.yml").write_text("version: 2\nmodels:\n  - name: care_pathways\n    columns: []\n")
    with pytest.raises(ValueError, match="without dbt YAML"):
        render_markdown(tmp_path)
