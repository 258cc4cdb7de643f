{#- Grain: one row per clinic (clinic_id) known from the EHR or from the per-clinic setting.
    Rule (ours): a clinic's time zone is the FHIR timezone extension on its Organization or
    Location where one is sent, else the per-clinic setting (KAP_CLINIC_TIMEZONES, or var clinic_time_zones),
    else KAP_TIMEZONE (or var default_time_zone; default UTC). A name the
    engine does not know is skipped (the next source applies). The local day of every *_date
    column and daily or weekly grain is read on this zone's wall clock (macro local_date). -#}
{%- set settings = clinic_time_zone_settings() %}
with ehr as (
    select clinic_id, time_zone
    from {{ ref('stg_ehr__clinics') }}
    where time_zone in {{ known_time_zones() }}
),

setting as (
    {%- for clinic_id, zone in settings.items() %}
    select cast('{{ clinic_id | replace("'", "") }}' as {{ dbt.type_string() }}) as clinic_id,
           cast('{{ zone | replace("'", "") }}' as {{ dbt.type_string() }}) as time_zone
    {% if not loop.last %}union all{% endif %}
    {%- else %}
    select cast(null as {{ dbt.type_string() }}) as clinic_id, cast(null as {{ dbt.type_string() }}) as time_zone
    where 1 = 0
    {%- endfor %}
),

known_setting as (
    select clinic_id, time_zone from setting where time_zone in {{ known_time_zones() }}
),

clinics as (
    select clinic_id from {{ ref('stg_ehr__clinics') }}
    union
    select clinic_id from setting
)

select
    c.clinic_id,
    coalesce(e.time_zone, s.time_zone, {{ default_time_zone() }}) as time_zone,
    case when e.time_zone is not null then 'fhir'
         when s.time_zone is not null then 'setting'
         else 'default' end as time_zone_source
from clinics as c
left join ehr as e on e.clinic_id = c.clinic_id
left join known_setting as s on s.clinic_id = c.clinic_id
where c.clinic_id is not null
