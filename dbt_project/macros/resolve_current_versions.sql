{#- THE version resolution of the event log, used once by stg_raw__current_events, which every
    staging model reads (DESIGN.md section 1, "Corrections are events"):

    1. keep events known at the cut-off: recorded_at <= var as_of (all events when as_of is unset);
    2. per source record (source, source_record_id) keep the latest version, ordered by
       recorded_at, then ingested_at, then event_id (a deterministic tie-break);
    3. drop the record entirely when that latest version is a `record_retracted` event
       (entered-in-error resource, voided dosing row, entered-in-error note).

    A retraction known only after as_of does not apply: rebuilding as of an earlier moment shows
    the record as it was then known. `records_filter` (a predicate on alias ev) limits the records
    resolved - an incremental build passes the records touched since its last build; every version
    of such a record is still read, so the resolution is the same as in a full build. -#}
{% macro resolve_current_versions(events_relation, records_filter='1 = 1') -%}
    {%- set cutoff = kap_as_of() -%}
with known as (
    select *
    from {{ events_relation }} as ev
    where {{ records_filter }}
    {%- if cutoff is not none %}
      and recorded_at <= {{ cutoff }}
    {%- endif %}
),

ranked as (
    select
        known.*,
        row_number() over (
            partition by source, source_record_id
            order by recorded_at desc, ingested_at desc, event_id desc
        ) as version_rank,
        count(*) over (partition by source, source_record_id) as versions_known
    from known
)

select
    event_id,
    event_type,
    patient_key,
    occurred_at,
    recorded_at,
    ingested_at,
    source,
    file_id,
    source_record_id,
    versions_known,
    payload
from ranked
where version_rank = 1
  and event_type <> 'record_retracted'
{%- endmacro %}
