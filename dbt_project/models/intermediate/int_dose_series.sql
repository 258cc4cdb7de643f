-- depends_on: {{ ref('stg_raw__touched_patients') }} (the patients a delta build recomputes)
-- depends_on: {{ ref('stg_ehr__patient_merges') }} (delta builds also recompute chart-merge partners)
{#- Grain: one row per dosing session (dose_key), placed in its episode and numbered.
    Rules (ours, from DOMAIN.md section 4):
    - dose_number: order of the session in its episode (start time, then dose_key);
    - gap_days: days between this dose's date and the previous dose's date in the episode;
    - phase: a dose is 'maintenance' once a dose is flagged booster in the dosing log or the
      episode's dose count passes the route's induction target (IV 6, IN 8, SL/PO/IM 3), and stays
      'maintenance' for every later dose; before that it is 'induction';
    - is_gap_flagged: induction gap > 7 days, or maintenance gap > 14 days for esketamine (IN);
    - integration: an attended integration session of the patient starting at or after the dose
      start and at most 72 h (resp. 24 h) later.
    Incremental per patient (macros/incremental.sql): every rule here reads only the patient's own
    doses, episodes and sessions, so a nightly build recomputes just the patients with an event
    ingested since the last build (delete + insert per patient); as-of builds rebuild fully. -#}
{{ kap_incremental_config('patient') }}
-- depends_on: {{ source('raw', 'events') }}
-- depends_on: {{ ref('int_clinic_time_zones') }}
with doses as (
    select
        d.*,
        ep.episode_key
    from {{ ref('int_doses_unified') }} as d
    left join {{ ref('int_patient_episodes') }} as ep
        on {{ episode_window_join('ep', 'd.patient_key', 'd.start_at') }}
    where {{ kap_incremental_filter('patient', 'd') }}
),

numbered as (
    select
        doses.*,
        row_number() over (partition by episode_key order by start_at, dose_key) as dose_number,
        lag(dose_date) over (partition by episode_key order by start_at, dose_key) as previous_dose_date,
        first_value(route) over (partition by episode_key order by start_at, dose_key) as episode_route
    from doses
),

phased as (
    select
        numbered.*,
        {{ dbt.datediff('previous_dose_date', 'dose_date', 'day') }} as gap_days,
        max(case when is_booster or dose_number > {{ induction_target_doses('episode_route') }} then 1 else 0 end)
            over (partition by episode_key order by dose_number rows between unbounded preceding and current row)
            as is_maintenance_flag
    from numbered
),

integration as (
    select
        p.dose_key,
        min(s.start_at) as integration_at
    from phased as p
    inner join {{ ref('int_therapy_sessions_unified') }} as s
        on s.patient_key = p.patient_key
        and s.session_type = 'integration'
        and s.is_attended
        and s.start_at >= p.start_at
        and s.start_at <= {{ dbt.dateadd('hour', 72, 'p.start_at') }}
    group by p.dose_key
)

select
    p.dose_key,
    p.episode_key,
    p.patient_key,
    p.clinic_id,
    p.dosing_id,
    p.administration_id,
    p.encounter_id,
    p.clinician_id,
    p.source_match,
    p.drug,
    p.route,
    p.setting,
    p.episode_route,
    p.dose_number,
    case when p.is_maintenance_flag = 1 then 'maintenance' else 'induction' end as phase,
    p.gap_days,
    p.dose_mg,
    p.log_dose_mg,
    p.ehr_dose_mg,
    p.dose_mg_per_kg,
    p.weight_kg,
    p.bp_pre_systolic,
    p.bp_pre_diastolic,
    p.bp_40min_systolic,
    p.bp_40min_diastolic,
    p.bp_discharge_systolic,
    p.bp_discharge_diastolic,
    p.heart_rate_pre,
    p.spo2_min,
    p.cadss_total,
    p.moaas_min,
    {{ dbt.datediff('p.start_at', 'i.integration_at', 'minute') }} / 60.0 as hours_to_integration,
    p.is_booster,
    p.has_source_conflict,
    coalesce((p.is_maintenance_flag = 0 and p.gap_days > 7)
             or (p.is_maintenance_flag = 1 and p.route = 'IN' and p.gap_days > 14), false) as is_gap_flagged,
    i.integration_at is not null as has_integration_72h,
    coalesce(i.integration_at <= {{ dbt.dateadd('hour', 24, 'p.start_at') }}, false) as has_integration_24h,
    p.dose_date,
    p.rems_form_submitted_on,
    p.start_at,
    p.end_at,
    p.monitoring_end_at,
    i.integration_at
from phased as p
left join integration as i on i.dose_key = p.dose_key
