{#- Grain: one row per cell (cell_key = episode_route:integration_band) of PHQ-9 outcomes by
    integration adherence and route, with margins ('all'). The seeds' central claim - integration
    and the care team extend the benefit of ketamine - as an analysis an analyst can read off.
    Definitions (ours unless DOMAIN.md section 4 says otherwise):
    - population: episodes with at least one dose whose PHQ-9 outcome_status is 'assessed' (a
      baseline and at least one score after the first dose) with a baseline > 0 (patient_outcomes,
      instrument phq9) - "evaluable episodes"; rates use them as the denominator;
    - integration adherence: doses followed by an attended integration session within 72 h, over
      the episode's doses (DOMAIN 4; adherence_patient); band under_50 (< 50 %), 50_to_80
      (50 % to < 80 %), 80_plus (>= 80 %), compared in integers so 0.8 is exact;
    - route: the episode route (route of dose 1, care_pathways);
    - response rate: responders / evaluable (assessed) episodes; durability: patient_outcomes.durability_days
      of the responders, mean and median, with how many ended (a later non-responding score) and how
      many are censored (still responding at the last score: durability is a lower bound there);
    - boosters per month: maintenance doses / months of follow-up (first dose date to discharge,
      closure, dropout or now; month = 30.4375 days);
    - small cells (DOMAIN 6): a cell of 5 or fewer distinct patients shows no numbers
      (is_suppressed); durability figures are computed on responders and are not shown when 5 or
      fewer distinct patients responded (is_durability_suppressed). No complementary suppression:
      a margin minus the shown cells can reveal a suppressed cell's total (see the YAML). -#}
{%- set month_days = 30.4375 -%}
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
)

select
    episode_route || ':' || integration_band as cell_key,
    episode_route,
    integration_band,
    'phq9' as instrument,
    {{ kap_suppress('patients', 'patients') }} as patients,
    {{ kap_suppress('episodes', 'patients') }} as episodes,
    {{ kap_suppress('responders', 'patients') }} as responders,
    {{ kap_suppress('round(cast(responders as ' ~ dbt.type_float() ~ ') / episodes, 3)', 'patients') }} as response_rate,
    {{ kap_suppress('durability_ended', 'responding_patients') }} as durability_ended,
    {{ kap_suppress('durability_censored', 'responding_patients') }} as durability_censored,
    {{ kap_suppress('round(mean_durability_days, 2)', 'responding_patients') }} as mean_durability_days,
    {{ kap_suppress('round(median_durability_days, 1)', 'responding_patients') }} as median_durability_days,
    {{ kap_suppress('maintenance_doses', 'patients') }} as maintenance_doses,
    {{ kap_suppress('round(followup_days / ' ~ month_days ~ ', 2)', 'patients') }} as followup_months,
    {{ kap_suppress('case when followup_days > 0 then round(' ~ month_days ~ ' * maintenance_doses / followup_days, 3) end', 'patients') }}
        as boosters_per_month,
    patients <= {{ kap_small_cell_max() }} as is_suppressed,
    responding_patients <= {{ kap_small_cell_max() }} as is_durability_suppressed,
    as_of_at
from cells
