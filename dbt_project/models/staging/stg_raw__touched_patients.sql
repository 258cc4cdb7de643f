-- depends_on: {{ source('raw', 'events') }}
-- depends_on: {{ ref('stg_ehr__patient_merges') }}
{#- Grain: one row per patient key a nightly delta build recomputes, plus one header row
    (patient_key null) saying from which watermark (touched_since) and up to which ingest
    (through) the set was computed. Built once per build so the incremental per-patient models
    read the set instead of each recomputing it (macros/incremental.sql); a full build, an as-of
    build or another engine leaves only the header. -#}
{{ config(materialized='table') }}
{%- set since = kap_touched_since() %}
select
    cast(null as {{ dbt.type_string() }}) as patient_key,
    {{ since if since is not none else 'cast(null as ' ~ dbt.type_timestamp() ~ ')' }} as touched_since,
    (select max(ingested_at) from {{ source('raw', 'events') }}) as through
{%- if since is not none %}
union all
select
    touched.patient_key,
    {{ since }} as touched_since,
    (select max(ingested_at) from {{ source('raw', 'events') }}) as through
from ({{ kap_touched_patients_sql(since) }}) as touched
where touched.patient_key is not null
{%- endif %}
