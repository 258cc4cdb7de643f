{#- Grain: one row per cell (cell_key = episode_route:continuity_band) of PHQ-9 outcomes by
    continuity of therapy care and route, with margins ('all'). The clinic's claim that the care
    team shapes how deep and how lasting the benefit is, as a table an analyst can read off.
    Definitions (ours unless DOMAIN.md section 4 says otherwise):
    - population: assessed episodes - a PHQ-9 baseline and at least one PHQ-9 score after the
      first dose (patient_outcomes, instrument phq9), computed here from the scores themselves;
    - continuity_band: care_continuity.continuity_band (UPC >= 0.75 against below, with the
      episodes of fewer than 2 therapy sessions and of none apart); route: care_pathways.episode_route;
    - response / remission (DOMAIN 4): responders and remitters over assessed episodes;
      durability (DOMAIN 4, ours): patient_outcomes.durability_days of the responders, median and
      mean, with how many ended and how many are censored (still responding at the last score);
    - small cells (DOMAIN 6), as integration_outcomes: a cell of 5 or fewer distinct patients shows
      no numbers; durability is not shown when 5 or fewer distinct patients responded;
    - complementary suppression (ours): in every row (one route across bands) and every column (one
      band across routes, margins included) of the table, when exactly one cell is suppressed, the
      shown cell with the fewest patients is suppressed too, so a margin minus the shown cells
      cannot reveal it; applied to rows, columns, rows, columns. -#}
with outcomes as (
    select episode_key, is_responder, is_remitter, is_censored, durability_days
    from {{ ref('patient_outcomes') }}
    where instrument = 'phq9'
      and baseline_score is not null
      and scores_post_dose > 0
),

episodes as (
    select
        p.episode_key,
        p.patient_key,
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
    {%- set group_by = [route_expr, band_expr] | reject('equalto', "'all'") | list %}
    select
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
        episode_route || ':' || continuity_band as cell_key,
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
        s.episode_route,
        s.continuity_band,
        s.patients,
        s.is_primary,
        (s.is_suppressed or pick.cell_key is not null) as is_suppressed
    from suppress_{{ loop.index0 }} as s
    left join (
        select
            cell_key,
            (sum(case when is_suppressed then 1 else 0 end) over (partition by {{ group_col }}) = 1
             and not is_suppressed
             and row_number() over (partition by {{ group_col }}
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
    on f.episode_route = c.episode_route and f.continuity_band = c.continuity_band
