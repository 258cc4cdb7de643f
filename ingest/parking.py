"""Parked, not lost: records that fail only because something they reference has not arrived yet.

A record is parked (docs/inputs.md, "Parked records") when every other check passes but
- its patient is unknown (`unknown_patient`: no key for its Patient reference or MRN), or
- its `clinic_id` (dosing log, note export) is not a clinic of the log (`unknown_clinic`: no
  Organization/Location `clinic_registered` event), or
- its Patient's identity conflicts with a known patient (`identity_conflict`, ingest/identity.py).

Parking writes the record twice: to raw.quarantine with that reason (so its file's counts stay
`read = accepted + quarantined + duplicate + ignored`, and the row is never lost), and to
restricted.parked_records with what is needed to accept it later (event id, type, times, payload,
the reference). Each ingest run ends by re-evaluating every open parked record against the log, in
SQL (`release`): once its patient and clinic resolve, its event is appended to raw.events with its
ORIGINAL file_id and knowledge time (recorded_at) - an as-of replay shows it from when the source
recorded it - and `ingested_at` = the releasing run's time, so incremental builds pick it up. The
park row records when and by which run it was released. A parked record whose event reached the log
meanwhile (the source re-sent it after the patient arrived), or a second parked copy of one event,
is closed as `superseded`.

Counting (the reconciliation identity): a file's counts are written once and never change; a parked
record counts as quarantined in its own file. Releases are counted on the releasing run (the run
summary's `parked.released`, restricted.parked_records.released_by_run), not on the original file.
So for every file F: events with file_id F = F.events_added + records of F released later.

Open parked rows older than PARKED_WARNING_DAYS raise a landing warning; identity conflicts raise
one while they are open.
"""
from __future__ import annotations

import duckdb

PARK_REASONS = ("unknown_patient", "unknown_clinic", "identity_conflict")
RELEASABLE = ("unknown_patient", "unknown_clinic")
CLINIC_CHECKED_SOURCES = ("dosing", "notes")
PARKED_WARNING_DAYS = 7

_REASONS_SQL = "(" + ", ".join(f"'{r}'" for r in PARK_REASONS) + ")"


def known_clinics_sql(source: str) -> str:
    """A relation (clinic_id) of the clinics in the log; empty for sources whose clinic is not checked."""
    if source not in CLINIC_CHECKED_SOURCES:
        return "SELECT NULL::VARCHAR AS clinic_id WHERE false"
    return ("SELECT DISTINCT payload->>'clinic_id' AS clinic_id FROM raw.events "
            "WHERE event_type = 'clinic_registered'")


def park(con: duckdb.DuckDBPyConnection, ctx, run_id: str | None, ingested_at) -> int:
    """Copy the parkable quarantined records of the file being committed (temp table _kap_out) into
    restricted.parked_records. Runs inside the file's transaction."""
    before = con.execute("SELECT count(*) FROM restricted.parked_records").fetchone()[0]
    con.execute(f"""
        INSERT INTO restricted.parked_records
        SELECT ?, line_number, reason_code, ?, event_id, event_type, ref_kind, ref_value,
               payload->>'clinic_id', occurred_at, recorded_at, source_record_id, payload,
               key_fhir_id, key_mrn, ?, ?, 'parked', NULL, NULL
        FROM _kap_out
        WHERE outcome = 'quarantined' AND reason_code IN {_REASONS_SQL} AND event_id IS NOT NULL
        ORDER BY line_number
    """, [ctx.file_id, ctx.source, ingested_at, run_id])
    return con.execute("SELECT count(*) FROM restricted.parked_records").fetchone()[0] - before


def release(con: duckdb.DuckDBPyConnection, run_id: str | None, ingested_at) -> dict:
    """Re-evaluate every open parked record against the log; append the resolvable ones to
    raw.events. Runs inside the caller's transaction. Returns counts for the run summary."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kap_release AS
        WITH clinics AS ({known_clinics_sql('dosing')}),
        open AS (
            SELECT p.file_id, p.line_number, p.event_id, p.parked_at, k.patient_key,
                   (k.patient_key IS NOT NULL OR p.ref_kind IS NULL) AND
                   (p.source NOT IN {tuple(CLINIC_CHECKED_SOURCES)} OR p.event_type = 'record_retracted'
                    OR c.clinic_id IS NOT NULL) AS resolvable
            FROM restricted.parked_records p
            LEFT JOIN restricted.patient_keys k ON k.id_system = p.ref_kind AND k.id_value = p.ref_value
            LEFT JOIN clinics c ON c.clinic_id = p.clinic_id
            WHERE p.status = 'parked' AND p.reason_code IN {tuple(RELEASABLE)}
        ), judged AS (
            SELECT o.*,
                   EXISTS (SELECT 1 FROM raw.events e WHERE e.event_id = o.event_id) AS in_log,
                   row_number() OVER (PARTITION BY o.event_id, o.resolvable
                                      ORDER BY o.parked_at, o.file_id, o.line_number) AS copy_no
            FROM open o
        )
        SELECT file_id, line_number, event_id, patient_key,
               CASE WHEN in_log OR copy_no > 1 THEN 'superseded' ELSE 'released' END AS new_status
        FROM judged WHERE resolvable
    """)
    con.execute("""
        INSERT INTO raw.events (event_id, event_type, patient_key, occurred_at, recorded_at, ingested_at,
                                source, file_id, source_record_id, payload)
        SELECT p.event_id, p.event_type, r.patient_key, p.occurred_at, p.recorded_at, ?, p.source,
               p.file_id, p.source_record_id, p.payload
        FROM restricted.parked_records p
        JOIN _kap_release r USING (file_id, line_number)
        WHERE r.new_status = 'released'
        ORDER BY p.parked_at, p.file_id, p.line_number
    """, [ingested_at])
    con.execute("""
        UPDATE restricted.parked_records p SET status = r.new_status, released_at = ?, released_by_run = ?
        FROM _kap_release r
        WHERE p.file_id = r.file_id AND p.line_number = r.line_number AND p.status = 'parked'
    """, [ingested_at, run_id])
    released, superseded = con.execute(
        "SELECT count(*) FILTER (new_status = 'released'), count(*) FILTER (new_status = 'superseded') "
        "FROM _kap_release").fetchone()
    still = dict(con.execute("SELECT reason_code, count(*) FROM restricted.parked_records "
                             "WHERE status = 'parked' GROUP BY ALL ORDER BY ALL").fetchall())
    con.execute("DROP TABLE IF EXISTS _kap_release")
    return {"released": released, "superseded": superseded, "still_parked": still}
