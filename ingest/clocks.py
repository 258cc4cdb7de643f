"""Clinical times sent without a UTC offset, read on the clinic's wall clock, in one SQL pass.

FHIR requires an offset on every dateTime with a time of day; exports still send
`2025-03-04T19:30:00`. A reader marks such a record (`local_clock`), having read the time as if
it were UTC. Before the common checks, `apply_local_clocks` finds the time zone of the record's
clinic and moves its clinical times (`occurred_at` and the payload's `start_at`, `end_at`,
`monitoring_end_at`, `authored_at`) from that wall clock to UTC, and notes the zone in the payload
(`time_zone_assumed`, counted by the data-quality warning `landing_events_offset_assumed`). With
no zone to read it in, the record is quarantined (`timestamp_without_offset`): guessing UTC moves
an evening session to the next day.

The record's clinic: the payload's `clinic_id` (Encounter.serviceProvider, Appointment's
Location/Organization, EpisodeOfCare.managingOrganization, ServiceRequest performer, the dosing
log's and the notes' `clinic_id`), else the patient's registered clinic (Patient
.managingOrganization). Its zone, first match wins: the FHIR timezone extension on the clinic's
Organization/Location (already in the event log, or in this file), the per-clinic setting
(`zones`), the default zone. A zone name DuckDB does not know counts as none. Knowledge times
(meta.lastUpdated, recorded_at) without an offset stay read as UTC.
"""
from __future__ import annotations

from collections.abc import Mapping

REASON = "timestamp_without_offset"
SHIFTED_FIELDS = ("start_at", "end_at", "monitoring_end_at", "authored_at")


def _values(zones: Mapping[str, str]) -> str:
    rows = [f"({_lit(c)}, {_lit(z)})" for c, z in sorted(zones.items()) if c and z]
    return ", ".join(rows) if rows else "(NULL, NULL)"


def _lit(value: str | None) -> str:
    return "NULL" if value is None else "'" + str(value).replace("'", "''") + "'"


def apply_local_clocks(con, zones: Mapping[str, str] | None = None, default_zone: str | None = None) -> int:
    """Resolve the `local_clock` records of `_kap_rec` (see the module docstring); returns how many
    were read in a clinic's zone. Records already failing a reader check are left alone."""
    if not con.execute("SELECT 1 FROM _kap_rec WHERE local_clock AND reason IS NULL LIMIT 1").fetchone():
        return 0
    shifted = ", ".join(
        f"'{f}', kap_iso(timezone('UTC', timezone(z.zone, TRY_CAST(r.payload->>'$.{f}' AS TIMESTAMP))))"
        for f in SHIFTED_FIELDS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _kap_clock AS
        WITH known AS (SELECT name FROM pg_timezone_names()),
        setting(clinic_id, zone) AS (VALUES {_values(zones or {})}),
        registered AS (
            SELECT payload->>'$.clinic_id' AS clinic_id,
                   arg_max(payload->>'$.time_zone', recorded_at) AS zone
            FROM (SELECT payload, recorded_at FROM raw.events
                  WHERE event_type = 'clinic_registered' AND payload->>'$.time_zone' IS NOT NULL
                  UNION ALL
                  SELECT payload, recorded_at FROM _kap_rec
                  WHERE event_type = 'clinic_registered' AND reason IS NULL
                    AND payload->>'$.time_zone' IS NOT NULL)
            GROUP BY 1
        ),
        patient_clinic AS (
            SELECT patient_key, arg_max(payload->>'$.clinic_id', recorded_at) AS clinic_id
            FROM raw.events
            WHERE event_type IN ('patient_registered', 'patient_updated')
              AND payload->>'$.clinic_id' IS NOT NULL
            GROUP BY 1
        ),
        rec AS (
            SELECT r.line_number,
                   coalesce(r.payload->>'$.clinic_id', pc.clinic_id,
                            CASE WHEN r.event_type IN ('patient_registered', 'patient_updated')
                                 THEN r.payload->>'$.clinic_id' END) AS clinic_id
            FROM _kap_rec r
            LEFT JOIN restricted.patient_keys k ON k.id_system = r.ref_kind AND k.id_value = r.ref_value
            LEFT JOIN patient_clinic pc ON pc.patient_key = k.patient_key
            WHERE r.local_clock AND r.reason IS NULL
        )
        SELECT rec.line_number, rec.clinic_id,
               coalesce((SELECT g.zone FROM registered g WHERE g.clinic_id = rec.clinic_id
                         AND g.zone IN (SELECT name FROM known)),
                        (SELECT s.zone FROM setting s WHERE s.clinic_id = rec.clinic_id
                         AND s.zone IN (SELECT name FROM known)),
                        (SELECT name FROM known WHERE name = {_lit(default_zone)})) AS zone
        FROM rec
    """)
    con.execute(f"""
        UPDATE _kap_rec AS r SET
            occurred_at = timezone('UTC', timezone(z.zone, r.occurred_at)),
            payload = json_merge_patch(r.payload, json_object({shifted}, 'time_zone_assumed', z.zone))
        FROM _kap_clock z
        WHERE z.line_number = r.line_number AND z.zone IS NOT NULL
    """)
    con.execute(f"""
        UPDATE _kap_rec AS r SET
            reason = '{REASON}',
            detail = 'no UTC offset and no time zone for clinic ' || coalesce(z.clinic_id, '(none named)')
        FROM _kap_clock z
        WHERE z.line_number = r.line_number AND z.zone IS NULL
    """)
    return con.execute("SELECT count(*) FROM _kap_clock WHERE zone IS NOT NULL").fetchone()[0]
