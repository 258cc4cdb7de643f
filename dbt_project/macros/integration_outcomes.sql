{#- The body of integration_outcomes (see that model for the definitions), network-wide or per
    clinic (by_clinic: one table per clinic_id, margins and suppression within the clinic; the
    model integration_outcomes_clinic, which publish uses for the per-clinic files). -#}
{% macro kap_integration_outcomes(by_clinic=false) -%}
{%- set month_days = 30.4375 -%}
{%- set clinic_col = 'clinic_id' -%}
{%- set group_col = 'clinic_id' if by_clinic else none -%}
with outcomes as (
    select episode_key, is_responder, is_censored, durability_days
    from {{ ref('patient_outcomes') }}
    where instrument = 'phq9'
      and outcome_status = 'assessed'
      and baseline_score > 0
),

episodes as (
    select
        p.episode_key,
        p.patient_key,
        p.clinic_id,
        p.episode_route,
        case
            when 2 * a.doses_with_integration_72h < p.doses_total then 'under_50'
            when 5 * a.doses_with_integration_72h < 4 * p.doses_total then '50_to_80'
            else '80_plus'
        end as integration_band,
        o.is_responder,
        o.is_censored,
        o.durability_days,
        p.maintenance_doses,
        {{ dbt.datediff('p.first_dose_date',
                        local_date('coalesce(p.discharged_at, p.closed_at, p.dropped_out_at, p.as_of_at)', 'tz.time_zone'),
                        'day') }} as followup_days,
        p.as_of_at
    from {{ ref('care_pathways') }} as p
    inner join {{ ref('adherence_patient') }} as a on a.episode_key = p.episode_key
    inner join outcomes as o on o.episode_key = p.episode_key
    left join {{ ref('int_clinic_time_zones') }} as tz on tz.clinic_id = p.clinic_id
    where p.doses_total > 0
      and p.episode_route is not null
),

cells as (
    {%- set groupings = [
        ('episode_route', 'integration_band'),
        ("'all'", 'integration_band'),
        ('episode_route', "'all'"),
        ("'all'", "'all'"),
    ] %}
    {%- for route_expr, band_expr in groupings %}
    {%- set group_by = ([clinic_col] if by_clinic else []) + ([route_expr, band_expr] | reject('equalto', "'all'") | list) %}
    select
        {% if by_clinic %}clinic_id,{% endif %}
        {{ route_expr }} as episode_route,
        {{ band_expr }} as integration_band,
        count(distinct patient_key) as patients,
        count(*) as episodes,
        count(distinct case when is_responder then patient_key end) as responding_patients,
        cast(sum(case when is_responder then 1 else 0 end) as {{ dbt.type_bigint() }}) as responders,
        cast(sum(case when is_responder and not is_censored then 1 else 0 end) as {{ dbt.type_bigint() }}) as durability_ended,
        cast(sum(case when is_responder and is_censored then 1 else 0 end) as {{ dbt.type_bigint() }}) as durability_censored,
        cast(avg(case when is_responder then 1.0 * durability_days end) as {{ dbt.type_float() }}) as mean_durability_days,
        cast({{ kap_median('case when is_responder then 1.0 * durability_days end') }} as {{ dbt.type_float() }}) as median_durability_days,
        cast(sum(maintenance_doses) as {{ dbt.type_bigint() }}) as maintenance_doses,
        cast(sum(case when followup_days > 0 then followup_days else 0 end) as {{ dbt.type_bigint() }}) as followup_days,
        max(as_of_at) as as_of_at
    from episodes
    {%- if group_by %}
    group by {{ group_by | join(', ') }}
    {%- endif %}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

keyed as (
    select
        episode_route || ':' || integration_band as cell_key,
        {% if by_clinic %}clinic_id || '|' || {% endif %}episode_route || ':' || integration_band as suppression_key,
        cells.*
    from cells
),

cell_suppression as (
    {{ kap_complementary_suppression('keyed', 'suppression_key', 'episode_route', 'integration_band', 'patients',
                                     'patients <= ' ~ kap_small_cell_max(), group_col=group_col) }}
),

keyed_with_cells as (
    select k.*, s.is_hidden as is_cell_hidden
    from keyed as k
    inner join cell_suppression as s on s.suppression_key = k.suppression_key
),

durability_suppression as (
    {{ kap_complementary_suppression('keyed_with_cells', 'suppression_key', 'episode_route', 'integration_band',
                                     'responding_patients',
                                     'is_cell_hidden or responding_patients <= ' ~ kap_small_cell_max(),
                                     group_col=group_col) }}
),

final as (
    select k.*, d.is_hidden as is_durability_hidden
    from keyed_with_cells as k
    inner join durability_suppression as d on d.suppression_key = k.suppression_key
)


select
    {% if by_clinic %}clinic_id,{% endif %}
    cell_key,
    episode_route,
    integration_band,
    'phq9' as instrument,
    {{ kap_unless('is_cell_hidden', 'patients') }} as patients,
    {{ kap_unless('is_cell_hidden', 'episodes') }} as episodes,
    {{ kap_unless('is_cell_hidden', 'responders') }} as responders,
    {{ kap_unless('is_cell_hidden', 'round(cast(responders as ' ~ dbt.type_float() ~ ') / episodes, 3)') }} as response_rate,
    {{ kap_unless('is_durability_hidden', 'durability_ended') }} as durability_ended,
    {{ kap_unless('is_durability_hidden', 'durability_censored') }} as durability_censored,
    {{ kap_unless('is_durability_hidden', 'round(mean_durability_days, 2)') }} as mean_durability_days,
    {{ kap_unless('is_durability_hidden', 'round(median_durability_days, 1)') }} as median_durability_days,
    {{ kap_unless('is_cell_hidden', 'maintenance_doses') }} as maintenance_doses,
    {{ kap_unless('is_cell_hidden', 'round(followup_days / ' ~ month_days ~ ', 2)') }} as followup_months,
    {{ kap_unless('is_cell_hidden', 'case when followup_days > 0 then round(' ~ month_days ~ ' * maintenance_doses / followup_days, 3) end') }}
        as boosters_per_month,
    is_cell_hidden as is_suppressed,
    is_durability_hidden as is_durability_suppressed,
    as_of_at
from final
{%- endmacro %}
