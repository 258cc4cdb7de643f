"""Are two published analytics files the same? `kap compare` and `make test-spark` ask it of a
DuckDB build and a Spark build of the same event log.

Two files are equal when they hold the same tables, each with the same columns in the same order,
of the same kind (integer, floating, text, boolean, date, timestamp: BIGINT and HUGEINT are one
kind, so are DOUBLE and DECIMAL), and the same rows: `EXCEPT ALL` both ways is empty, duplicates
counted. Floating-point values are compared rounded - DOUBLE and DECIMAL to 6 decimals, REAL
(FLOAT, 4 bytes) to 4 - because two engines may sum or divide in another order and differ in the
last bits; every published rate is already rounded to at most 3 decimals (the mart YAML says how
far), so no published figure can differ and still compare equal. `publish_runs` is compared
without run_id and published_at (each publish has its own), `dq_results` without run_id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from kap.settings import limit_resources

from kap.warehouse import path_for_sql

DOUBLE_DIGITS = 6
REAL_DIGITS = 4
IGNORED_COLUMNS = {"publish_runs": {"run_id", "published_at"}, "dq_results": {"run_id"}}
SAMPLE_ROWS = 3


def kind(dtype: str) -> str:
    """The kind of a DuckDB column type, as a BI tool sees it."""
    t = dtype.upper()
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
             "UBIGINT", "UHUGEINT"):
        return "integer"
    if t in ("FLOAT", "DOUBLE") or t.startswith("DECIMAL"):
        return "floating"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    return {"VARCHAR": "text", "BOOLEAN": "boolean", "DATE": "date"}.get(t, t)


@dataclass
class TableDiff:
    table: str
    rows_reference: int | None = None
    rows_candidate: int | None = None
    only_in_reference: int = 0
    only_in_candidate: int = 0
    problems: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.problems and self.only_in_reference == 0 and self.only_in_candidate == 0


@dataclass
class CompareReport:
    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    tables: list[tuple[str, TableDiff]] = field(default_factory=list)   # (file name, diff)
    problems: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.problems and all(d.equal for _, d in self.tables)

    def text(self) -> str:
        lines = []
        for name, d in self.tables:
            state = "same" if d.equal else "DIFFERENT"
            lines.append(f"{name:40} {d.table:28} {state:9} rows {d.rows_reference} / {d.rows_candidate}"
                         + (f", only in reference {d.only_in_reference}, only in candidate {d.only_in_candidate}"
                            if not d.equal else ""))
            lines += [f"    {p}" for p in d.problems] + [f"    {s}" for s in d.samples]
        lines += [f"problem: {p}" for p in self.problems]
        compared = len(self.tables)
        lines.append(f"{compared} tables in {len(self.pairs)} file pairs: "
                     + ("all equal" if self.equal else f"{sum(not d.equal for _, d in self.tables)} differ"))
        return "\n".join(lines)


def _columns(con, alias: str, table: str) -> list[tuple[str, str]]:
    return con.execute("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_catalog = ? AND table_schema = 'main' AND table_name = ? "
                       "ORDER BY ordinal_position", [alias, table]).fetchall()


def _normalised(table: str, columns: list[tuple[str, str]]) -> str:
    items = []
    for name, dtype in columns:
        if name in IGNORED_COLUMNS.get(table, set()):
            continue
        q = '"' + name.replace('"', '""') + '"'
        k = kind(dtype)
        if dtype.upper() == "FLOAT":
            items.append(f"round(CAST({q} AS DOUBLE), {REAL_DIGITS}) AS {q}")
        elif k == "floating":
            items.append(f"round(CAST({q} AS DOUBLE), {DOUBLE_DIGITS}) AS {q}")
        elif k == "integer":
            items.append(f"CAST({q} AS HUGEINT) AS {q}")
        else:
            items.append(q)
    return ", ".join(items)


def compare_tables(con, table: str, ref: str = "ref", cand: str = "cand") -> TableDiff:
    diff = TableDiff(table)
    ref_cols, cand_cols = _columns(con, ref, table), _columns(con, cand, table)
    if not ref_cols or not cand_cols:
        diff.problems.append(f"only in {'reference' if ref_cols else 'candidate'}")
        return diff
    diff.rows_reference = con.execute(f'SELECT count(*) FROM {ref}.main."{table}"').fetchone()[0]
    diff.rows_candidate = con.execute(f'SELECT count(*) FROM {cand}.main."{table}"').fetchone()[0]
    if [c for c, _ in ref_cols] != [c for c, _ in cand_cols]:
        diff.problems.append(f"columns differ: {[c for c, _ in ref_cols]} vs {[c for c, _ in cand_cols]}")
        return diff
    kinds = [(c, kind(a), kind(b)) for (c, a), (_, b) in zip(ref_cols, cand_cols) if kind(a) != kind(b)]
    diff.problems += [f"column {c}: {a} vs {b}" for c, a, b in kinds]
    a = f'SELECT {_normalised(table, ref_cols)} FROM {ref}.main."{table}"'
    b = f'SELECT {_normalised(table, cand_cols)} FROM {cand}.main."{table}"'
    for side, first, second in (("reference", a, b), ("candidate", b, a)):
        rows = con.execute(f"SELECT * FROM ({first} EXCEPT ALL {second}) LIMIT 1000000").fetchall()
        setattr(diff, f"only_in_{side}", len(rows))
        diff.samples += [f"only in {side}: {row}" for row in rows[:SAMPLE_ROWS]]
    return diff


def _clinic_files(path: Path) -> dict[str, Path]:
    return {p.name[len(path.stem):]: p for p in path.parent.glob(f"{path.stem}_clinic_*.duckdb")}


def compare_published(reference: Path, candidate: Path, clinic_files: bool = True) -> CompareReport:
    """Compare two published files (and, by default, their per-clinic files) table by table."""
    report = CompareReport()
    pairs = [(Path(reference), Path(candidate))]
    if clinic_files:
        ref_clinics, cand_clinics = _clinic_files(Path(reference)), _clinic_files(Path(candidate))
        for suffix in sorted(set(ref_clinics) ^ set(cand_clinics)):
            report.problems.append(f"clinic file *{suffix} exists on one side only")
        pairs += [(ref_clinics[s], cand_clinics[s]) for s in sorted(set(ref_clinics) & set(cand_clinics))]
    report.pairs = pairs
    con = limit_resources(duckdb.connect())
    try:
        for ref_path, cand_path in pairs:
            con.execute(f"ATTACH {path_for_sql(ref_path)} AS ref (READ_ONLY)")
            con.execute(f"ATTACH {path_for_sql(cand_path)} AS cand (READ_ONLY)")
            try:
                tables = sorted({r[0] for r in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_catalog IN ('ref', 'cand') "
                    "AND table_schema = 'main'").fetchall()})
                for table in tables:
                    report.tables.append((ref_path.name, compare_tables(con, table)))
            finally:
                con.execute("DETACH ref")
                con.execute("DETACH cand")
    finally:
        con.close()
    return report
