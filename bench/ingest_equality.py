"""Do two warehouses hold the same event log and quarantine? EXCEPT both ways.

Used to prove that an ingest change (a faster statement, a skipped scan) changes no event and no
quarantine row: ingest the same landing folder with the old and the new code into two homes, then

    python bench/ingest_equality.py OLD_HOME/warehouse.duckdb NEW_HOME/warehouse.duckdb

Patient keys are random surrogates, so each side's key is replaced by the Patient.id it was made
for (restricted.patient_keys), in the key column and inside the payload. `ingested_at`,
`quarantined_at` and the run's clock quoted in a detail are left out. Exit status 1 when anything differs.
"""
from __future__ import annotations

import argparse
import sys

import duckdb

EVENTS = """
    WITH keys AS (SELECT patient_key, min(id_value) AS fhir_id FROM {db}.restricted.patient_keys
                  WHERE id_system = 'fhir' GROUP BY patient_key)
    SELECT e.event_id, e.event_type, k.fhir_id, e.occurred_at, e.recorded_at, e.source, e.file_id,
           e.source_record_id,
           CASE WHEN e.patient_key IS NULL THEN e.payload::VARCHAR
                ELSE replace(e.payload::VARCHAR, e.patient_key, coalesce(k.fhir_id, '?')) END AS payload
    FROM {db}.raw.events e LEFT JOIN keys k USING (patient_key)"""
# a recorded_after_ingest detail quotes the run's clock: that part is left out too
QUARANTINE = """
    SELECT file_id, line_number, reason_code,
           regexp_replace(detail, 'was ingested \\([^)]*\\)', 'was ingested (run clock)') AS detail, raw_record
    FROM {db}.raw.quarantine"""


def compare(old: str, new: str) -> dict[str, tuple[int, int, int, int]]:
    con = duckdb.connect()
    con.execute(f"ATTACH '{old.replace(chr(39), chr(39) * 2)}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{new.replace(chr(39), chr(39) * 2)}' AS b (READ_ONLY)")
    out = {}
    for name, sql in (("raw.events", EVENTS), ("raw.quarantine", QUARANTINE)):
        a, b = sql.format(db="a"), sql.format(db="b")
        rows_a = con.execute(f"SELECT count(*) FROM ({a})").fetchone()[0]
        rows_b = con.execute(f"SELECT count(*) FROM ({b})").fetchone()[0]
        only_a = con.execute(f"SELECT count(*) FROM ((FROM ({a})) EXCEPT ALL (FROM ({b})))").fetchone()[0]
        only_b = con.execute(f"SELECT count(*) FROM ((FROM ({b})) EXCEPT ALL (FROM ({a})))").fetchone()[0]
        out[name] = (rows_a, rows_b, only_a, only_b)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="the reference warehouse.duckdb")
    ap.add_argument("new", help="the warehouse.duckdb to compare with it")
    args = ap.parse_args(argv)
    same = True
    for table, (rows_a, rows_b, only_a, only_b) in compare(args.old, args.new).items():
        print(f"{table}: {rows_a:,} rows / {rows_b:,} rows; only in the first {only_a:,}, "
              f"only in the second {only_b:,}")
        same = same and only_a == only_b == 0 and rows_a == rows_b
    print("identical" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
