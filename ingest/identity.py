"""Random surrogate patient keys (DOMAIN.md section 6).

`restricted.patient_keys` maps each source identifier of a patient - the FHIR `Patient.id`
(id_system 'fhir') and the MRN (id_system 'mrn') - to one random key made by DuckDB's
`gen_random_uuid()`. The key is never derived from the person's data (no hash of the MRN), so two
warehouses ingesting the same export give different keys, and the map never leaves the restricted
zone. Keys are created only from accepted Patient resources; the dosing log and note export find
them by MRN, other FHIR resources by literal or conditional reference.
"""
from __future__ import annotations

import duckdb


def assign_keys(con: duckdb.DuckDBPyConnection, candidates: str, file_id: str, now) -> int:
    """Create keys for the patients in table/view `candidates(fhir_id, mrn)` that lack one.

    A patient already known by its FHIR id or its MRN keeps that key (a new MRN for a known id,
    or a new id for a known MRN, is added to the same key). Runs inside the caller's transaction.
    Returns the number of identifier rows added.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kap_new_keys AS
        WITH c AS (
            SELECT fhir_id, any_value(mrn ORDER BY mrn) AS mrn
            FROM {candidates} WHERE fhir_id IS NOT NULL GROUP BY fhir_id
        ), k AS (
            SELECT c.fhir_id, c.mrn,
                   coalesce(kf.patient_key, km.patient_key) AS known_key
            FROM c
            LEFT JOIN restricted.patient_keys kf ON kf.id_system = 'fhir' AND kf.id_value = c.fhir_id
            LEFT JOIN restricted.patient_keys km ON km.id_system = 'mrn' AND km.id_value = c.mrn
        )
        SELECT fhir_id, mrn, coalesce(known_key, gen_random_uuid()::VARCHAR) AS patient_key
        FROM k
    """)
    before = con.execute("SELECT count(*) FROM restricted.patient_keys").fetchone()[0]
    con.execute("""
        INSERT INTO restricted.patient_keys (patient_key, id_system, id_value, file_id, created_at)
        SELECT DISTINCT ON (id_system, id_value) patient_key, id_system, id_value, ?, ?
        FROM (
            SELECT patient_key, 'fhir' AS id_system, fhir_id AS id_value FROM _kap_new_keys
            UNION ALL
            SELECT patient_key, 'mrn', mrn FROM _kap_new_keys WHERE mrn IS NOT NULL
        ) n
        WHERE NOT EXISTS (SELECT 1 FROM restricted.patient_keys k
                          WHERE k.id_system = n.id_system AND k.id_value = n.id_value)
        ORDER BY id_system, id_value, patient_key
    """, [file_id, now])
    after = con.execute("SELECT count(*) FROM restricted.patient_keys").fetchone()[0]
    con.execute("DROP TABLE IF EXISTS _kap_new_keys")
    return after - before


def merge_chains_sql(more_links: str | None = None) -> str:
    """Two CTEs for a `WITH RECURSIVE` clause: `links(retired_id, survivor_id)`, the documented chart
    merges (Patient.link `replaced-by` on the retired chart, `replaces` on the survivor; by Patient.id)
    in the log, plus the rows of `more_links` (a SELECT of the same two columns); and
    `retired(survivor_id, retired_id, depth)`: every chart a survivor took over, through chains
    (A replaced-by B, then B replaced-by C: C retires B and A). UNION stops on cycles."""
    extra = f"\n            UNION ALL{more_links}" if more_links else ""
    return f"""links AS (
            SELECT source_record_id[9:] AS retired_id, payload->>'replaced_by_id' AS survivor_id
            FROM raw.events WHERE event_type IN ('patient_registered', 'patient_updated')
              AND payload->>'replaced_by_id' IS NOT NULL
            UNION ALL
            SELECT payload->>'replaces_id', source_record_id[9:]
            FROM raw.events WHERE event_type IN ('patient_registered', 'patient_updated')
              AND payload->>'replaces_id' IS NOT NULL{extra}
        ), retired(survivor_id, retired_id, depth) AS (
            SELECT survivor_id, retired_id, 1 FROM links WHERE retired_id IS NOT NULL AND survivor_id IS NOT NULL
            UNION
            SELECT r.survivor_id, l.retired_id, r.depth + 1
            FROM retired r JOIN links l ON l.survivor_id = r.retired_id
            WHERE r.depth < 32 AND l.retired_id <> r.survivor_id
        )"""


def find_conflicts(con: duckdb.DuckDBPyConnection, records: str | None = "_kap_rec") -> int:
    """Fill temp table `_kap_conflicts(line_number, detail)`: the Patient records of `records` whose
    identity collides with a known patient, which must never be merged into one key (docs/inputs.md,
    "Identity"). A patient is known by its Patient.id and its MRN; a collision is
    - an MRN already held by another patient (a new Patient.id, or a known one keyed apart), or
    - a known Patient.id arriving with another MRN than the one it has, or
    - within one file, one MRN on two new Patient.ids, or one Patient.id with two MRNs (the later
      line is the newcomer).
    The newcomer's record is parked `identity_conflict`; records referencing it stay unresolved
    (parked `unknown_patient`) until the conflict is resolved. `records` None: no records (other
    sources). Returns the number of conflicting records.
    """
    if records is not None and con.execute(
            f"SELECT NOT EXISTS (SELECT 1 FROM {records} WHERE reason IS NULL AND NOT ignored "
            "AND key_fhir_id IS NOT NULL)").fetchone()[0]:
        records = None          # no Patient in these records: nothing can collide (nor a log scan)
    if records is None:
        con.execute("CREATE OR REPLACE TEMP TABLE _kap_conflicts (line_number BIGINT, is_merge BOOLEAN, detail VARCHAR)")
        con.execute("CREATE OR REPLACE TEMP TABLE _kap_merges (line_number BIGINT)")
        return 0
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kap_conflicts AS
        WITH RECURSIVE c AS (
            SELECT line_number, key_fhir_id AS fhir_id, key_mrn AS mrn,
                   payload->>'replaces_id' AS replaces_id
            FROM {records} WHERE reason IS NULL AND NOT ignored AND key_fhir_id IS NOT NULL
        ), {merge_chains_sql(f'''
            SELECT key_fhir_id, payload->>'replaced_by_id' FROM {records}
            WHERE reason IS NULL AND key_fhir_id IS NOT NULL AND payload->>'replaced_by_id' IS NOT NULL
            UNION ALL
            SELECT replaces_id, fhir_id FROM c WHERE replaces_id IS NOT NULL''')},
        firsts AS (
            -- within the file: the first line of each Patient.id and of each MRN claims it
            SELECT *,
                   min(line_number) OVER (PARTITION BY mrn) AS mrn_first_line,
                   first_value(fhir_id) OVER (PARTITION BY mrn ORDER BY line_number) AS mrn_first_id,
                   first_value(mrn) OVER (PARTITION BY fhir_id ORDER BY line_number) AS id_first_mrn
            FROM c
        ), known AS (
            SELECT f.*, kf.patient_key AS id_key, km.patient_key AS mrn_key,
                   (SELECT min(k.id_value) FROM restricted.patient_keys k
                    WHERE k.id_system = 'mrn' AND k.patient_key = kf.patient_key) AS id_known_mrn
            FROM firsts f
            LEFT JOIN restricted.patient_keys kf ON kf.id_system = 'fhir' AND kf.id_value = f.fhir_id
            LEFT JOIN restricted.patient_keys km ON km.id_system = 'mrn' AND km.id_value = f.mrn
        ), judged AS (
            SELECT k.*, (mrn_key IS NOT NULL AND mrn_key IS DISTINCT FROM id_key AND EXISTS (
                SELECT 1 FROM retired l JOIN restricted.patient_keys r
                    ON r.id_system = 'fhir' AND r.id_value = l.retired_id
                WHERE l.survivor_id = k.fhir_id AND r.patient_key = k.mrn_key)) AS is_merge
            FROM known k
        )
        SELECT line_number, is_merge, CASE
            WHEN mrn_key IS NOT NULL AND mrn_key IS DISTINCT FROM id_key AND NOT is_merge
                THEN 'the MRN belongs to another patient (another Patient.id); no Patient.link merges them'
            WHEN id_key IS NOT NULL AND mrn IS NOT NULL AND id_known_mrn IS NOT NULL AND mrn <> id_known_mrn
                THEN 'the Patient.id is known with another MRN; an MRN change is not applied silently'
            WHEN mrn_key IS NULL AND mrn IS NOT NULL AND fhir_id <> mrn_first_id
                THEN 'the MRN is also on another Patient.id earlier in this file'
            WHEN id_key IS NULL AND mrn IS NOT NULL AND mrn <> id_first_mrn
                THEN 'the Patient.id carries another MRN earlier in this file'
            END AS detail
        FROM judged
        WHERE (mrn_key IS NOT NULL AND mrn_key IS DISTINCT FROM id_key AND NOT is_merge)
           OR is_merge
           OR (id_key IS NOT NULL AND mrn IS NOT NULL AND id_known_mrn IS NOT NULL AND mrn <> id_known_mrn)
           OR (mrn_key IS NULL AND mrn IS NOT NULL AND fhir_id <> mrn_first_id)
           OR (id_key IS NULL AND mrn IS NOT NULL AND mrn <> id_first_mrn)
    """)
    # a documented merge's survivor is no conflict: it is keyed on its own (its MRN stays with the
    # retired chart's key), and dbt's merge map joins the two from the link's knowledge time
    con.execute("CREATE OR REPLACE TEMP TABLE _kap_merges AS SELECT line_number FROM _kap_conflicts WHERE is_merge")
    con.execute("DELETE FROM _kap_conflicts WHERE is_merge OR detail IS NULL")
    return con.execute("SELECT count(*) FROM _kap_conflicts").fetchone()[0]


RESOLVE_MACROS = r"""
-- kind of a patient reference: 'fhir' for literal (Patient/x, https://.../Patient/x),
-- 'mrn' for conditional (Patient?identifier=system|value), NULL when it names no patient
CREATE OR REPLACE TEMP MACRO kap_ref_kind(r) AS CASE
    WHEN r IS NULL THEN NULL
    WHEN regexp_matches(r, '(^|/)Patient\?identifier=') THEN 'mrn'
    WHEN regexp_matches(r, '(^|/)Patient/[^/?#]+') THEN 'fhir'
    ELSE NULL END;
CREATE OR REPLACE TEMP MACRO kap_ref_value(r) AS CASE
    WHEN regexp_matches(r, '(^|/)Patient\?identifier=')
        THEN url_decode(regexp_extract(r, 'identifier=(?:[^|&]*(?:\||%7C))?([^&]+)', 1))
    ELSE regexp_extract(r, '(?:^|/)Patient/([^/?#]+)', 1) END;
"""
