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

Identity conflicts are released when a documented merge in the log explains them (the same rule as
at ingest, ingest/identity.py), or closed as superseded when a later version of the resource reaches
the log. A record that resolves but happened before its patient's birth year is closed as rejected
(the ingest check before_birth), never logged.

Open parked rows older than PARKED_WARNING_DAYS raise a landing warning; identity conflicts raise
one while they are open; rejections raise one on the run that made them.
"""
from __future__ import annotations

import duckdb

from ingest import identity

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
               key_fhir_id, key_mrn, ?, ?, 'parked', NULL, NULL, NULL
        FROM _kap_out
        WHERE outcome = 'quarantined' AND reason_code IN {_REASONS_SQL} AND event_id IS NOT NULL
        ORDER BY line_number
    """, [ctx.file_id, ctx.source, ingested_at, run_id])
    return con.execute("SELECT count(*) FROM restricted.parked_records").fetchone()[0] - before


def release(con: duckdb.DuckDBPyConnection, run_id: str | None, ingested_at) -> dict:
    """Re-evaluate every open parked record against the log; append the resolvable ones to
    raw.events. Runs inside the caller's transaction. Returns counts for the run summary.

    In order: identity conflicts that a documented merge now explains are keyed and released
    (`_release_merges`); identity conflicts whose resource has a later version in the log are
    closed as superseded; then every record whose patient and clinic resolve is released - unless
    it happened before its patient's birth year (the check ingest makes, `before_birth`), then it
    is closed as rejected with that reason."""
    merged = _release_merges(con, run_id, ingested_at)
    superseded_conflicts = _close_superseded_conflicts(con, run_id, ingested_at)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kap_release AS
        WITH clinics AS ({known_clinics_sql('dosing')}),
        births AS (
            SELECT patient_key, arg_max(TRY_CAST(payload->>'$.birth_year' AS INTEGER), recorded_at) AS birth_year
            FROM raw.events WHERE event_type IN ('patient_registered', 'patient_updated')
            GROUP BY patient_key
        ),
        open AS (
            SELECT p.file_id, p.line_number, p.event_id, p.parked_at, k.patient_key,
                   (k.patient_key IS NOT NULL OR p.ref_kind IS NULL) AND
                   (p.source NOT IN {tuple(CLINIC_CHECKED_SOURCES)} OR p.event_type = 'record_retracted'
                    OR c.clinic_id IS NOT NULL) AS resolvable,
                   CASE WHEN p.occurred_at IS NOT NULL AND p.event_type NOT IN {_PATIENT_EVENTS + ('record_retracted',)}
                             AND year(p.occurred_at) < b.birth_year
                        THEN 'before_birth: occurred in ' || year(p.occurred_at) || ', before birth year ' || b.birth_year
                   END AS rejected
            FROM restricted.parked_records p
            LEFT JOIN restricted.patient_keys k ON k.id_system = p.ref_kind AND k.id_value = p.ref_value
            LEFT JOIN clinics c ON c.clinic_id = p.clinic_id
            LEFT JOIN births b ON b.patient_key = k.patient_key
            WHERE p.status = 'parked' AND p.reason_code IN {tuple(RELEASABLE)}
        ), judged AS (
            SELECT o.*,
                   EXISTS (SELECT 1 FROM raw.events e WHERE e.event_id = o.event_id) AS in_log,
                   row_number() OVER (PARTITION BY o.event_id, o.resolvable
                                      ORDER BY o.parked_at, o.file_id, o.line_number) AS copy_no
            FROM open o
        )
        SELECT file_id, line_number, event_id, patient_key,
               CASE WHEN in_log OR copy_no > 1 THEN 'superseded'
                    WHEN rejected IS NOT NULL THEN 'rejected'
                    ELSE 'released' END AS new_status,
               CASE WHEN in_log THEN 'its event reached the log from another file'
                    WHEN copy_no > 1 THEN 'another parked copy of the same event was released'
                    ELSE rejected END AS closed_detail
        FROM judged WHERE resolvable
    """)
    _append_released(con, "_kap_release", ingested_at)
    con.execute("""
        UPDATE restricted.parked_records p
        SET status = r.new_status, released_at = ?, released_by_run = ?, closed_detail = r.closed_detail
        FROM _kap_release r
        WHERE p.file_id = r.file_id AND p.line_number = r.line_number AND p.status = 'parked'
    """, [ingested_at, run_id])
    released, superseded, rejected = con.execute(
        "SELECT count(*) FILTER (new_status = 'released'), count(*) FILTER (new_status = 'superseded'), "
        "count(*) FILTER (new_status = 'rejected') FROM _kap_release").fetchone()
    still = dict(con.execute("SELECT reason_code, count(*) FROM restricted.parked_records "
                             "WHERE status = 'parked' GROUP BY ALL ORDER BY ALL").fetchall())
    con.execute("DROP TABLE IF EXISTS _kap_release")
    return {"released": released + merged, "superseded": superseded + superseded_conflicts,
            "rejected": rejected, "still_parked": still}


_PATIENT_EVENTS = ("patient_registered", "patient_updated")


def _append_released(con: duckdb.DuckDBPyConnection, table: str, ingested_at) -> None:
    """Append the parked records of `table` (file_id, line_number, patient_key, new_status) whose new
    status is 'released' to raw.events: original file_id and knowledge time, the releasing run's
    ingested_at."""
    con.execute(f"""
        INSERT INTO raw.events (event_id, event_type, patient_key, occurred_at, recorded_at, ingested_at,
                                source, file_id, source_record_id, payload)
        SELECT p.event_id, p.event_type, r.patient_key, p.occurred_at, p.recorded_at, ?, p.source,
               p.file_id, p.source_record_id, p.payload
        FROM restricted.parked_records p
        JOIN {table} r USING (file_id, line_number)
        WHERE r.new_status = 'released'
        ORDER BY p.parked_at, p.file_id, p.line_number
    """, [ingested_at])


def _release_merges(con: duckdb.DuckDBPyConnection, run_id: str | None, ingested_at) -> int:
    """Release the Patient records parked `identity_conflict` whose MRN's chart has since been
    retired into them by a documented merge (Patient.link in the log, through chains): the same
    rule ingest applies to a Patient that arrives with its link (ingest/identity.py). Such a
    Patient.id is keyed on its own (the MRN stays with the retired chart's key), as at ingest."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kap_merge_release AS
        WITH RECURSIVE {identity.merge_chains_sql()},
        open AS (
            SELECT p.file_id, p.line_number, p.event_id, p.parked_at, p.key_fhir_id,
                   km.patient_key AS mrn_key, kf.patient_key AS id_key
            FROM restricted.parked_records p
            LEFT JOIN restricted.patient_keys km ON km.id_system = 'mrn' AND km.id_value = p.key_mrn
            LEFT JOIN restricted.patient_keys kf ON kf.id_system = 'fhir' AND kf.id_value = p.key_fhir_id
            WHERE p.status = 'parked' AND p.reason_code = 'identity_conflict' AND p.key_fhir_id IS NOT NULL
        )
        SELECT file_id, line_number, event_id, parked_at, key_fhir_id, NULL::VARCHAR AS patient_key,
               'released' AS new_status
        FROM open o
        WHERE o.mrn_key IS NOT NULL AND o.mrn_key IS DISTINCT FROM o.id_key
          AND EXISTS (SELECT 1 FROM retired l JOIN restricted.patient_keys r
                          ON r.id_system = 'fhir' AND r.id_value = l.retired_id
                      WHERE l.survivor_id = o.key_fhir_id AND r.patient_key = o.mrn_key)
    """)
    n = con.execute("SELECT count(*) FROM _kap_merge_release").fetchone()[0]
    if n:
        con.execute("""
            INSERT INTO restricted.patient_keys (patient_key, id_system, id_value, file_id, created_at)
            SELECT gen_random_uuid()::VARCHAR, 'fhir', key_fhir_id, arg_min(file_id, parked_at), ?
            FROM _kap_merge_release m
            WHERE NOT EXISTS (SELECT 1 FROM restricted.patient_keys k
                              WHERE k.id_system = 'fhir' AND k.id_value = m.key_fhir_id)
            GROUP BY key_fhir_id ORDER BY key_fhir_id
        """, [ingested_at])
        con.execute("""
            UPDATE _kap_merge_release m SET patient_key = k.patient_key,
                new_status = CASE WHEN EXISTS (SELECT 1 FROM raw.events e WHERE e.event_id = m.event_id)
                                  THEN 'superseded' ELSE 'released' END
            FROM restricted.patient_keys k WHERE k.id_system = 'fhir' AND k.id_value = m.key_fhir_id
        """)
        _append_released(con, "_kap_merge_release", ingested_at)
        con.execute("""
            UPDATE restricted.parked_records p
            SET status = m.new_status, released_at = ?, released_by_run = ?,
                closed_detail = 'a documented merge (Patient.link) retired the chart holding its MRN into it'
            FROM _kap_merge_release m
            WHERE p.file_id = m.file_id AND p.line_number = m.line_number AND p.status = 'parked'
        """, [ingested_at, run_id])
        n = con.execute("SELECT count(*) FROM _kap_merge_release WHERE new_status = 'released'").fetchone()[0]
    con.execute("DROP TABLE IF EXISTS _kap_merge_release")
    return n


def _close_superseded_conflicts(con: duckdb.DuckDBPyConnection, run_id: str | None, ingested_at) -> int:
    """An identity conflict is resolved by a later version of the same resource in the log (the EHR
    corrected the MRN, or sent the chart again under the identity it now has): the parked version
    is closed as superseded and never enters the log."""
    rows = con.execute("""
        UPDATE restricted.parked_records p
        SET status = 'superseded', released_at = ?, released_by_run = ?,
            closed_detail = 'a later version of the resource reached the log'
        WHERE p.status = 'parked' AND p.reason_code = 'identity_conflict'
          AND EXISTS (SELECT 1 FROM raw.events e
                      WHERE e.source = p.source AND e.source_record_id = p.source_record_id
                        AND e.recorded_at > p.recorded_at)
        RETURNING 1
    """, [ingested_at, run_id]).fetchall()
    return len(rows)
