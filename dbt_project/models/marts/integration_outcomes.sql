{#- Grain: one row per cell (cell_key = episode_route:integration_band) of PHQ-9 outcomes by
    integration adherence and route, with margins ('all'). The seeds' central claim - integration
    and the care team extend the benefit of ketamine - as an analysis an analyst can read off.
    Definitions (ours unless DOMAIN.md section 4 says otherwise):
    - population: episodes with at least one dose, a PHQ-9 baseline > 0 and at least one PHQ-9
      score after the first dose (patient_outcomes, instrument phq9) - "evaluable episodes";
    - integration adherence: doses followed by an attended integration session within 72 h, over
      the episode's doses (DOMAIN 4; adherence_patient); band under_50 (< 50 %), 50_to_80
      (50 % to < 80 %), 80_plus (>= 80 %), compared in integers so 0.8 is exact;
    - route: the episode route (route of dose 1, care_pathways);
    - response rate: responders / evaluable episodes; durability: patient_outcomes.durability_days
      of the responders, mean and median, with how many ended (a later non-responding score) and how
      many are censored (still responding at the last score: durability is a lower bound there);
    - boosters per month: maintenance doses / months of follow-up (first dose date to discharge,
      closure, dropout or now; month = 30.4375 days);
    - small cells (DOMAIN 6): a cell of 5 or fewer distinct patients shows no numbers
      (is_suppressed); durability figures are computed on responders and are not shown when 5 or
      fewer distinct patients responded, or the cell is suppressed (is_durability_suppressed);
    - complementary suppression (ours, macro kap_complementary_suppression): each route's row and
      each band's column, with its 'all' margin, is a line whose margin is the sum of its cells;
      a line with exactly one suppressed entry also suppresses its smallest shown cell (fewest
      patients, then cell_key), round after round, so no suppressed cell is a margin minus shown
      cells. The same for the durability figures (responding patients). -#}
{%- set month_days = 30.4375 -%}
with outcomes as (
    select episode_key, is_responder, is_censored, durability_days
    from {{ ref('patient_outcomes') }}
    where instrument = 'phq9'
      and baseline_score > 0
      and scores_post_dose > 0
),

episodes as (
    select
        p.episode_key,
        p.patient_key,
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
                        'cast(coalesce(p.discharged_at, p.closed_at, p.dropped_out_at, p.as_of_at) as date)',
                        'day') }} as followup_days,
        p.as_of_at
    from {{ ref('care_pathways') }} as p
    inner join {{ ref('adherence_patient') }} as a on a.episode_key = p.episode_key
    inner join outcomes as o on o.episode_key = p.episode_key
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
    {%- set group_by = [route_expr, band_expr] | reject('equalto', "'all'") | list %}
    select
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
    select episode_route || ':' || integration_band as cell_key, cells.*
    from cells
),

cell_suppression as (
    {{ kap_complementary_suppression('keyed', 'cell_key', 'episode_route', 'integration_band', 'patients',
                                     'patients <= ' ~ kap_small_cell_max()) }}
),

keyed_with_cells as (
    select k.*, s.is_hidden as is_cell_hidden
    from keyed as k
    inner join cell_suppression as s on s.cell_key = k.cell_key
),

durability_suppression as (
    {{ kap_complementary_suppression('keyed_with_cells', 'cell_key', 'episode_route', 'integration_band',
                                     'responding_patients',
                                     'is_cell_hidden or responding_patients <= ' ~ kap_small_cell_max()) }}
),

final as (
    select k.*, d.is_hidden as is_durability_hidden
    from keyed_with_cells as k
    inner join durability_suppression as d on d.cell_key = k.cell_key
)


select
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
