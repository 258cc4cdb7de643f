{#- Grain: exactly one row. "Now" for the as-of rules (see macro kap_now): var as_of when set, else
    the knowledge cutoff of the data received - the latest row of raw.knowledge_cutoffs, which
    ingest records per run (the Bulk Data manifest transactionTime of the latest drop, else the
    latest ingest time of a file with accepted records; never later than the run's start). A log
    without recorded cutoffs (written by hand, or before cutoffs were recorded) falls back to the
    latest ingest time of an accepted file, then to the latest recorded_at. Never the wall clock. -#}
{%- set cutoff = kap_as_of() %}
{%- set cutoffs = source('raw', 'knowledge_cutoffs') %}
{%- set have_cutoffs = execute and adapter.get_relation(database=cutoffs.database, schema=cutoffs.schema,
                                                        identifier=cutoffs.identifier) is not none %}
with received as (
    {%- if have_cutoffs %}
    select cutoff_at, basis
    from {{ cutoffs }}
    where cutoff_at is not null
    order by recorded_at desc, run_id desc
    limit 1
    {%- else %}
    select cast(null as {{ dbt.type_timestamp() }}) as cutoff_at, cast(null as varchar) as basis
    where 1 = 0
    {%- endif %}
),

accepted_files as (
    select max(ingested_at) as ingested_at
    from {{ source('raw', 'ingest_files') }}
    where status = 'ingested' and records_accepted > 0
),

known as (
    select count(*) as events_known, max(recorded_at) as last_recorded_at
    from {{ source('raw', 'events') }}
    {%- if cutoff is not none %}
    where recorded_at <= {{ cutoff }}
    {%- endif %}
)

select
    {% if cutoff is not none -%}
    {{ cutoff }}
    {%- else -%}
    coalesce(
        (select cutoff_at from received),
        (select ingested_at from accepted_files),
        (select last_recorded_at from known),
        cast('1970-01-01' as {{ dbt.type_timestamp() }})
    )
    {%- endif %} as as_of_at,
    {% if cutoff is not none -%}
    'as_of'
    {%- else -%}
    case
        when (select cutoff_at from received) is not null then (select basis from received)
        when (select ingested_at from accepted_files) is not null then 'latest_ingest_time'
        when (select last_recorded_at from known) is not null then 'latest_recorded_at'
        else 'empty_log'
    end
    {%- endif %} as now_basis,
    {{ 'true' if cutoff is not none else 'false' }} as is_explicit_as_of,
    events_known
from known
