-- depends_on: {{ ref('stg_raw__touched_patients') }} (the patients a delta build recomputes)
-- depends_on: {{ ref('stg_ehr__patient_merges') }} (delta builds also recompute chart-merge partners)
-- depends_on: {{ source('raw', 'events') }}
{#- Grain: one row per dosing session (dose_key). Safety monitoring (DOMAIN.md sections 2 and 4):
    - bp_readings: how many of the three BP readings (pre, ~40 min, discharge) are complete pairs;
    - max_systolic_rise / max_diastolic_rise: highest of the 40-min and discharge reading minus the
      pre-dose reading; has_bp_rise_flag: rise >= 40 mmHg systolic or >= 25 mmHg diastolic;
    - monitoring_minutes: dose start to end of monitoring; has_monitoring_120min: >= 120;
    - has_spo2: SpO2 recorded; REMS (esketamine only, else null): form submitted 0-7 days after;
    - adverse events: reported for the patient on the dose date (the clinic's local day);
    - monitoring completeness per route and per clinic protocol (DOMAIN 4): the session's rule is
      the row of seed monitoring_protocols for its route and setting, a clinic's own row before
      the '*' default, an exact setting before '*'. The defaults: IN esketamine label/REMS (pre,
      ~40 min and discharge BP, >= 120 min from the first device, SpO2, REMS form within 7 days);
      IV (pre, ~40 min, discharge BP, >= 30 min after the infusion ends, SpO2); IM (pre and
      discharge BP, >= 30 min after the injection, SpO2); SL/PO in the office (pre and discharge
      BP, >= 60 min after the dose); SL/PO at home or telehealth-supervised: excluded from the
      rate (is_monitoring_complete null). A session no rule matches is not complete (ours).
      monitoring_gaps lists the unmet requirements.
    Incremental per patient (macros/incremental.sql): a dose and its adverse events are one
    patient's; the monitoring_protocols seed is in the build fingerprint. -#}
{{ kap_incremental_config('patient') }}
with doses as (
    select * from {{ ref('int_dose_series') }}
    where {{ kap_incremental_filter('patient') }}
),

protocols as (
    select * from {{ ref('monitoring_protocols') }}
),

rule_candidates as (
    select
        d.dose_key,
        p.monitoring_rule,
        p.clinic_id <> '*' as is_clinic_protocol,
        p.is_excluded,
        p.needs_bp_pre,
        p.needs_bp_40min,
        p.needs_bp_discharge,
        p.min_observation_minutes,
        p.observation_from,
        p.needs_spo2,
        p.needs_rems_form,
        row_number() over (
            partition by d.dose_key
            order by case when p.clinic_id = '*' then 1 else 0 end,
                     case when p.setting = '*' then 1 else 0 end
        ) as precedence
    from doses as d
    inner join protocols as p
        on p.route = d.route
        and (p.clinic_id = d.clinic_id or p.clinic_id = '*')
        and (p.setting = d.setting or p.setting = '*')
),

rules as (
    select * from rule_candidates where precedence = 1
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
        and {{ kap_incremental_filter('patient', 'ae', 'record_patient_key') }}
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
        {{ dbt.datediff("case when r.observation_from = 'dose_end' then coalesce(d.end_at, d.start_at) else d.start_at end",
                        'd.monitoring_end_at', 'minute') }} as observation_minutes,
        r.monitoring_rule,
        r.is_clinic_protocol,
        r.is_excluded,
        r.needs_bp_pre,
        r.needs_bp_40min,
        r.needs_bp_discharge,
        r.min_observation_minutes,
        r.needs_spo2,
        r.needs_rems_form,
        case when d.drug = 'esketamine' or d.route = 'IN' then
            coalesce(d.rems_form_submitted_on >= d.dose_date
                     and {{ dbt.datediff('d.dose_date', 'd.rems_form_submitted_on', 'day') }} <= 7, false)
        end as has_rems_within_7d
    from doses as d
    left join rules as r on r.dose_key = d.dose_key
),

judged as (
    select
        m.*,
        nullif(concat_ws(', ',
            case when m.monitoring_rule is null then 'no_rule' end,
            case when m.needs_bp_pre and (m.bp_pre_systolic is null or m.bp_pre_diastolic is null) then 'bp_pre' end,
            case when m.needs_bp_40min and (m.bp_40min_systolic is null or m.bp_40min_diastolic is null) then 'bp_40min' end,
            case when m.needs_bp_discharge and (m.bp_discharge_systolic is null or m.bp_discharge_diastolic is null) then 'bp_discharge' end,
            case when m.min_observation_minutes is not null
                      and not coalesce(m.observation_minutes >= m.min_observation_minutes, false) then 'observation' end,
            case when m.needs_spo2 and m.spo2_min is null then 'spo2' end,
            case when m.needs_rems_form and not coalesce(m.has_rems_within_7d, false) then 'rems_form' end
        ), '') as monitoring_gaps
    from measured as m
)

select
    m.dose_key,
    m.episode_key,
    m.patient_key,
    m.clinic_id,
    m.drug,
    m.route,
    m.setting,
    m.monitoring_rule,
    coalesce(m.is_clinic_protocol, false) as is_clinic_protocol,
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
    m.observation_minutes,
    m.min_observation_minutes,
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
    case when coalesce(m.is_excluded, false) then null
         else m.monitoring_gaps is null end as is_monitoring_complete,
    case when coalesce(m.is_excluded, false) then null else m.monitoring_gaps end as monitoring_gaps,
    m.dose_date,
    m.rems_form_submitted_on,
    m.start_at,
    m.monitoring_end_at
from judged as m
left join adverse as a on a.dose_key = m.dose_key
