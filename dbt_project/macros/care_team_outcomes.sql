{#- The body of care_team_outcomes (see that model for the definitions), network-wide or per
    clinic (by_clinic: one table per clinic_id, margins and suppression within the clinic; the
    model care_team_outcomes_clinic, which publish uses for the per-clinic files). -#}
{% macro kap_care_team_outcomes(by_clinic=false) -%}
{%- set partition = 'clinic_id, ' if by_clinic else '' -%}
{%- set cell_id = ("clinic_id || '|' || " if by_clinic else '') ~ "episode_route || ':' || continuity_band" -%}
with outcomes as (
    select episode_key, is_responder, is_remitter, is_censored, durability_days
    from {{ ref('patient_outcomes') }}
    where instrument = 'phq9'
      and outcome_status = 'assessed'
),

episodes as (
    select
        p.episode_key,
        p.patient_key,
        p.clinic_id,
        p.episode_route,
        c.continuity_band,
        coalesce(o.is_responder, false) as is_responder,
        coalesce(o.is_remitter, false) as is_remitter,
        o.is_censored,
        o.durability_days,
        p.as_of_at
    from {{ ref('care_pathways') }} as p
    inner join {{ ref('care_continuity') }} as c on c.episode_key = p.episode_key
    inner join outcomes as o on o.episode_key = p.episode_key
    where p.episode_route is not null
),

cells as (
    {%- set groupings = [
        ('episode_route', 'continuity_band'),
        ("'all'", 'continuity_band'),
        ('episode_route', "'all'"),
        ("'all'", "'all'"),
    ] %}
    {%- for route_expr, band_expr in groupings %}
    {%- set group_by = (['clinic_id'] if by_clinic else []) + ([route_expr, band_expr] | reject('equalto', "'all'") | list) %}
    select
        {% if by_clinic %}clinic_id,{% endif %}
        {{ route_expr }} as episode_route,
        {{ band_expr }} as continuity_band,
        count(distinct patient_key) as patients,
        count(*) as episodes,
        cast(sum(case when is_responder then 1 else 0 end) as {{ dbt.type_bigint() }}) as responders,
        cast(sum(case when is_remitter then 1 else 0 end) as {{ dbt.type_bigint() }}) as remitters,
        count(distinct case when is_responder then patient_key end) as responding_patients,
        cast(sum(case when is_responder and not is_censored then 1 else 0 end) as {{ dbt.type_bigint() }}) as durability_ended,
        cast(sum(case when is_responder and is_censored then 1 else 0 end) as {{ dbt.type_bigint() }}) as durability_censored,
        cast(avg(case when is_responder then 1.0 * durability_days end) as {{ dbt.type_float() }}) as mean_durability_days,
        cast({{ kap_median('case when is_responder then 1.0 * durability_days end') }} as {{ dbt.type_float() }}) as median_durability_days,
        max(as_of_at) as as_of_at
    from episodes
    {%- if group_by %}
    group by {{ group_by | join(', ') }}
    {%- endif %}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

suppress_0 as (
    select
        {{ cell_id }} as cell_key,
        {% if by_clinic %}clinic_id,{% endif %}
        episode_route,
        continuity_band,
        patients,
        patients <= {{ kap_small_cell_max() }} as is_primary,
        patients <= {{ kap_small_cell_max() }} as is_suppressed
    from cells
),

{%- set passes = [('episode_route', 'continuity_band'), ('continuity_band', 'episode_route'),
                  ('episode_route', 'continuity_band'), ('continuity_band', 'episode_route')] %}
{%- for group_col, member_col in passes %}
suppress_{{ loop.index }} as (
    select
        s.cell_key,
        {% if by_clinic %}s.clinic_id,{% endif %}
        s.episode_route,
        s.continuity_band,
        s.patients,
        s.is_primary,
        (s.is_suppressed or pick.cell_key is not null) as is_suppressed
    from suppress_{{ loop.index0 }} as s
    left join (
        select
            cell_key,
            (sum(case when is_suppressed then 1 else 0 end) over (partition by {{ partition }}{{ group_col }}) = 1
             and not is_suppressed
             and row_number() over (partition by {{ partition }}{{ group_col }}
                                    order by case when is_suppressed then 1 else 0 end, patients, cell_key) = 1
            ) as is_pick
        from suppress_{{ loop.index0 }}
        where {{ member_col }} <> 'all'
    ) as pick on pick.cell_key = s.cell_key and pick.is_pick
),
{%- endfor %}

final_suppression as (
    select * from suppress_{{ passes | length }}
)

select
    {% if by_clinic %}c.clinic_id,{% endif %}
    c.episode_route || ':' || c.continuity_band as cell_key,
    c.episode_route,
    c.continuity_band,
    'phq9' as instrument,
    case when not f.is_suppressed then c.patients end as patients,
    case when not f.is_suppressed then c.episodes end as episodes,
    case when not f.is_suppressed then c.responders end as responders,
    case when not f.is_suppressed then round(cast(c.responders as {{ dbt.type_float() }}) / c.episodes, 3) end as response_rate,
    case when not f.is_suppressed then c.remitters end as remitters,
    case when not f.is_suppressed then round(cast(c.remitters as {{ dbt.type_float() }}) / c.episodes, 3) end as remission_rate,
    case when not f.is_suppressed and c.responding_patients > {{ kap_small_cell_max() }} then c.durability_ended end as durability_ended,
    case when not f.is_suppressed and c.responding_patients > {{ kap_small_cell_max() }} then c.durability_censored end as durability_censored,
    case when not f.is_suppressed and c.responding_patients > {{ kap_small_cell_max() }} then round(c.mean_durability_days, 2) end as mean_durability_days,
    case when not f.is_suppressed and c.responding_patients > {{ kap_small_cell_max() }} then round(c.median_durability_days, 1) end as median_durability_days,
    f.is_suppressed,
    (f.is_suppressed and not f.is_primary) as is_complementary_suppressed,
    (f.is_suppressed or c.responding_patients <= {{ kap_small_cell_max() }}) as is_durability_suppressed,
    c.as_of_at
from cells as c
inner join final_suppression as f
    on f.cell_key = {{ cell_id | replace('clinic_id', 'c.clinic_id') | replace('episode_route', 'c.episode_route') | replace('continuity_band', 'c.continuity_band') }}
{%- endmacro %}
