{#- Grain: one row per merged patient_key (ours). The merge map of documented chart merges: an EHR
    that merges two charts sends Patient.link `replaced-by` on the retired chart and/or `replaces` on
    the survivor. From the time the link was recorded, the retired chart's records count under the
    survivor's key (macro kap_survivor_key, used by every staging model); an as-of build before that
    time does not know the link and shows both patients apart. The event log is never rewritten.
    Chains resolve to the last survivor: A replaced-by B, then B replaced-by C, maps A and B to C
    (up to kap_merge_chain_depth links). A cycle (A replaced-by B, B replaced-by A) names no
    survivor: its charts stay apart.
    A table, not a view, on every engine: each staging view looks its rows' survivors up here, and
    as a view every query of a staging view would resolve every chart link again. -#}
{{ config(materialized='table') }}
{%- set depth = var('kap_merge_chain_depth', 8) -%}
with patient_versions as (
    select
        patient_key,
        source_record_id,
        {{ json_text('payload', 'replaced_by_id') }} as replaced_by_id,
        {{ json_text('payload', 'replaces_id') }} as replaces_id,
        recorded_at
    from {{ ref('stg_raw__current_events') }}
    where event_type in ('patient_registered', 'patient_updated')
      and patient_key is not null
),

chart_keys as (
    select distinct source_record_id, patient_key
    from patient_versions
),

links as (
    select
        v.patient_key as merged_patient_key,
        c.patient_key as survivor_patient_key,
        'replaced-by' as link_type,
        v.recorded_at as merged_at
    from patient_versions as v
    inner join chart_keys as c on c.source_record_id = 'Patient/' || v.replaced_by_id
    where v.replaced_by_id is not null
    union all
    select
        c.patient_key as merged_patient_key,
        v.patient_key as survivor_patient_key,
        'replaces' as link_type,
        v.recorded_at as merged_at
    from patient_versions as v
    inner join chart_keys as c on c.source_record_id = 'Patient/' || v.replaces_id
    where v.replaces_id is not null
),

ranked as (
    select
        links.*,
        row_number() over (
            partition by merged_patient_key
            order by merged_at desc, survivor_patient_key desc, link_type
        ) as link_rank
    from links
    where merged_patient_key <> survivor_patient_key
),

direct as (
    select merged_patient_key, survivor_patient_key, link_type, merged_at
    from ranked
    where link_rank = 1
),

hop_0 as (
    select merged_patient_key, survivor_patient_key, link_type, merged_at
    from direct
),
{% for i in range(1, depth + 1) %}
hop_{{ i }} as (
    -- one more link: a survivor that was itself retired hands its records on
    select
        h.merged_patient_key,
        coalesce(d.survivor_patient_key, h.survivor_patient_key) as survivor_patient_key,
        h.link_type,
        h.merged_at
    from hop_{{ i - 1 }} as h
    left join direct as d on d.merged_patient_key = h.survivor_patient_key
),
{% endfor %}

resolved as (
    select h.*
    from hop_{{ depth }} as h
    -- still retired after every hop: a cycle (or a chain longer than the depth)
    left join direct as still on still.merged_patient_key = h.survivor_patient_key
    where h.survivor_patient_key <> h.merged_patient_key
      and still.merged_patient_key is null
)

select
    merged_patient_key,
    survivor_patient_key,
    link_type,
    merged_at
from resolved
