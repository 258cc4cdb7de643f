-- depends_on: {{ ref('stg_raw__touched_patients') }} (the patients a delta build recomputes)
-- depends_on: {{ ref('stg_ehr__patient_merges') }} (delta builds also recompute chart-merge partners)
-- depends_on: {{ source('raw', 'events') }}
{#- Grain: one row per episode with at least one dose (episode_key).
    Induction completion (DOMAIN.md section 4, ours): counted on the doses of the episode's route
    (the route of dose 1): IV 6 doses within 21 days, esketamine (IN) 8 sessions in weeks 1-4
    (28 days), SL/PO/IM >= 3 dosing sessions (no time limit). "Within N days" = dose date at most
    N-1 days after the first dose's date (day 0 is the first dose). Induction is completed at the
    start of the dose that reaches the target.
    Incremental per patient (macros/incremental.sql): every row is one patient's, computed from
    that patient's records only, so a nightly build recomputes just the touched patients. -#}
{{ kap_incremental_config('patient') }}
with doses as (
    select
        s.*,
        min(dose_date) over (partition by episode_key) as first_dose_date
    from {{ ref('int_dose_series') }} as s
    where episode_key is not null
      and {{ kap_incremental_filter('patient', 's') }}
),

route_doses as (
    select
        doses.*,
        {{ dbt.datediff('first_dose_date', 'dose_date', 'day') }} as day_of_course,
        row_number() over (partition by episode_key order by dose_number) as route_dose_number
    from doses
    where route = episode_route
      and (
        {{ induction_window_days('episode_route') }} is null
        or {{ dbt.datediff('first_dose_date', 'dose_date', 'day') }} < {{ induction_window_days('episode_route') }}
      )
),

completion as (
    select episode_key, start_at as induction_completed_at
    from route_doses
    where route_dose_number = {{ induction_target_doses('episode_route') }}
),

routes as (
    select episode_key, {{ dbt.listagg('route', "','", "order by route") }} as routes
    from (select distinct episode_key, route from doses) as r
    group by episode_key
)

select
    d.episode_key,
    max(d.patient_key) as patient_key,
    max(d.episode_route) as episode_route,
    max(case when d.dose_number = 1 then d.drug end) as episode_drug,
    max(r.routes) as routes,
    {{ induction_target_doses('max(d.episode_route)') }} as induction_target_doses,
    {{ induction_window_days('max(d.episode_route)') }} as induction_window_days,
    count(*) as doses_total,
    sum(case when d.phase = 'induction' then 1 else 0 end) as induction_doses,
    sum(case when d.phase = 'maintenance' then 1 else 0 end) as maintenance_doses,
    max(c.induction_completed_at) is not null as is_induction_completed,
    max(case when d.phase = 'induction' then d.gap_days end) as max_induction_gap_days,
    max(case when d.phase = 'maintenance' then d.gap_days end) as max_maintenance_gap_days,
    max(case when d.is_gap_flagged and d.phase = 'induction' then 1 else 0 end) = 1 as has_induction_gap_over_7d,
    case when max(d.episode_route) = 'IN'
         then max(case when d.is_gap_flagged and d.phase = 'maintenance' then 1 else 0 end) = 1
    end as has_maintenance_gap_over_14d,
    sum(case when d.has_integration_72h then 1 else 0 end) as doses_with_integration_72h,
    sum(case when d.has_integration_24h then 1 else 0 end) as doses_with_integration_24h,
    min(d.start_at) as first_dose_at,
    max(c.induction_completed_at) as induction_completed_at,
    max(case when d.phase = 'induction' then d.start_at end) as last_induction_dose_at,
    min(case when d.phase = 'maintenance' then d.start_at end) as maintenance_started_at,
    max(d.start_at) as last_dose_at
from doses as d
left join completion as c on c.episode_key = d.episode_key
left join routes as r on r.episode_key = d.episode_key
group by d.episode_key
