{#- Grain: one row per dosing session (dose_key). Safety monitoring (DOMAIN.md sections 2 and 4):
    - bp_readings: how many of the three BP readings (pre, ~40 min, discharge) are complete pairs;
    - max_systolic_rise / max_diastolic_rise: highest of the 40-min and discharge reading minus the
      pre-dose reading; has_bp_rise_flag: rise >= 40 mmHg systolic or >= 25 mmHg diastolic;
    - monitoring_minutes: dose start to end of monitoring; has_monitoring_120min: >= 120;
    - has_spo2: SpO2 recorded; REMS (esketamine only, else null): form submitted 0-7 days after;
    - adverse events: reported for the patient on the dose date (the clinic's local day);
    - is_monitoring_complete (esketamine, DOMAIN 4): 3 BP readings, >= 120 min, SpO2, REMS within
      7 days; for other routes (ours, good practice) the same without REMS. -#}
with doses as (
    select * from {{ ref('int_dose_series') }}
),

adverse as (
    select
        d.dose_key,
        count(*) as adverse_events,
        sum(case when ae.seriousness = 'serious' then 1 else 0 end) as serious_adverse_events
    from doses as d
    left join {{ ref('int_clinic_time_zones') }} as tz
        on tz.clinic_id = d.clinic_id
    inner join {{ ref('stg_ehr__adverse_events') }} as ae
        on ae.patient_key = d.patient_key
        and {{ local_date('ae.adverse_event_at', 'tz.time_zone') }} = d.dose_date
    group by d.dose_key
),

measured as (
    select
        d.*,
        (case when d.bp_pre_systolic is not null and d.bp_pre_diastolic is not null then 1 else 0 end
         + case when d.bp_40min_systolic is not null and d.bp_40min_diastolic is not null then 1 else 0 end
         + case when d.bp_discharge_systolic is not null and d.bp_discharge_diastolic is not null then 1 else 0 end
        ) as bp_readings,
        case
            when d.bp_40min_systolic is null then d.bp_discharge_systolic - d.bp_pre_systolic
            when d.bp_discharge_systolic is null then d.bp_40min_systolic - d.bp_pre_systolic
            when d.bp_40min_systolic > d.bp_discharge_systolic then d.bp_40min_systolic - d.bp_pre_systolic
            else d.bp_discharge_systolic - d.bp_pre_systolic
        end as max_systolic_rise,
        case
            when d.bp_40min_diastolic is null then d.bp_discharge_diastolic - d.bp_pre_diastolic
            when d.bp_discharge_diastolic is null then d.bp_40min_diastolic - d.bp_pre_diastolic
            when d.bp_40min_diastolic > d.bp_discharge_diastolic then d.bp_40min_diastolic - d.bp_pre_diastolic
            else d.bp_discharge_diastolic - d.bp_pre_diastolic
        end as max_diastolic_rise,
        {{ dbt.datediff('d.start_at', 'd.monitoring_end_at', 'minute') }} as monitoring_minutes,
        case when d.drug = 'esketamine' or d.route = 'IN' then
            coalesce(d.rems_form_submitted_on >= d.dose_date
                     and {{ dbt.datediff('d.dose_date', 'd.rems_form_submitted_on', 'day') }} <= 7, false)
        end as has_rems_within_7d
    from doses as d
)

select
    m.dose_key,
    m.episode_key,
    m.patient_key,
    m.clinic_id,
    m.drug,
    m.route,
    m.phase,
    m.dose_number,
    m.bp_readings,
    m.bp_pre_systolic,
    m.bp_pre_diastolic,
    m.bp_40min_systolic,
    m.bp_40min_diastolic,
    m.bp_discharge_systolic,
    m.bp_discharge_diastolic,
    m.max_systolic_rise,
    m.max_diastolic_rise,
    m.monitoring_minutes,
    m.spo2_min,
    m.heart_rate_pre,
    m.cadss_total,
    m.moaas_min,
    coalesce(a.adverse_events, 0) as adverse_events,
    coalesce(a.serious_adverse_events, 0) as serious_adverse_events,
    coalesce(m.max_systolic_rise >= 40 or m.max_diastolic_rise >= 25, false) as has_bp_rise_flag,
    coalesce(m.monitoring_minutes >= 120, false) as has_monitoring_120min,
    m.spo2_min is not null as has_spo2,
    m.has_rems_within_7d,
    (m.bp_readings = 3
     and coalesce(m.monitoring_minutes >= 120, false)
     and m.spo2_min is not null
     and coalesce(m.has_rems_within_7d, true)) as is_monitoring_complete,
    m.dose_date,
    m.rems_form_submitted_on,
    m.start_at,
    m.monitoring_end_at
from measured as m
left join adverse as a on a.dose_key = m.dose_key
