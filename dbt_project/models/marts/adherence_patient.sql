{#- Grain: one row per patient episode (episode_key) - adherence is measured per care pathway,
    so a patient with two episodes has two rows. Definitions: DOMAIN.md section 4 (all ours):
    - has_preparation_before_first_dose: >= 1 attended preparation session before dose 1;
    - is_induction_completed: IV 6 doses within 21 days, IN 8 in 28 days, SL/PO/IM >= 3;
    - integration_72h_share / integration_24h_share: doses followed by an attended integration
      session within 72 h (24 h) of the dose start, over doses;
    - noshow_rate / late_cancel_rate: appointments with status noshow / cancelled less than 24 h
      before start (cancelled_at), over appointments whose start is on or before now;
    - dosing gaps: induction gap > 7 days, maintenance gap > 14 days (esketamine only, else null);
    - assessment cadence: baseline before dose 1 (the outcome baseline), a score within 7 days
      either side of the end of induction (ours: the completing dose, else the last induction
      dose), a score 120-240 days after the first dose (HEDIS DRR-E window);
    - is_dropout: see care_pathways. -#}
with pathway as (
    select * from {{ ref('int_episode_pathway') }}
),

appointments as (
    select
        ep.episode_key,
        count(*) as appointments_due,
        sum(case when a.appointment_status = 'noshow' then 1 else 0 end) as noshows,
        sum(case when a.appointment_status = 'cancelled' then 1 else 0 end) as cancellations,
        sum(case when a.appointment_status = 'cancelled' and a.cancelled_at is not null
                  and {{ dbt.datediff('a.cancelled_at', 'a.start_at', 'minute') }} < 24 * 60
                 then 1 else 0 end) as late_cancellations
    from {{ ref('stg_ehr__appointments') }} as a
    inner join {{ ref('int_patient_episodes') }} as ep
        on {{ episode_window_join('ep', 'a.patient_key', 'a.start_at') }}
    where a.start_at <= {{ kap_now() }}
      and a.is_kap_session
      and not (a.session_type = 'psychotherapy' and a.start_at < ep.start_at)
    group by ep.episode_key
),

cadence as (
    select
        s.episode_key,
        max(case when s.is_baseline then 1 else 0 end) = 1 as has_baseline_assessment,
        max(case when abs({{ dbt.datediff(local_date('coalesce(p.induction_completed_at, d.last_induction_dose_at)', 'tz.time_zone'), 's.scored_date', 'day') }}) <= 7
                 then 1 else 0 end) = 1 as has_end_of_induction_assessment,
        max(case when s.days_from_first_dose between 120 and 240 then 1 else 0 end) = 1 as has_followup_assessment_120_240d
    from {{ ref('int_assessment_series') }} as s
    inner join pathway as p on p.episode_key = s.episode_key
    left join {{ ref('int_episode_dosing_summarised') }} as d on d.episode_key = s.episode_key
    left join {{ ref('int_clinic_time_zones') }} as tz on tz.clinic_id = p.clinic_id
    group by s.episode_key
)

select
    p.episode_key,
    p.patient_key,
    p.clinic_id,
    p.episode_route,
    p.current_phase,
    p.preparation_sessions_before_first_dose,
    p.doses_total,
    p.induction_doses,
    p.induction_target_doses,
    d.doses_with_integration_72h,
    d.doses_with_integration_24h,
    case when p.doses_total > 0 then round(1.0 * d.doses_with_integration_72h / p.doses_total, 3) end as integration_72h_share,
    case when p.doses_total > 0 then round(1.0 * d.doses_with_integration_24h / p.doses_total, 3) end as integration_24h_share,
    coalesce(a.appointments_due, 0) as appointments_due,
    coalesce(a.noshows, 0) as noshows,
    coalesce(a.cancellations, 0) as cancellations,
    coalesce(a.late_cancellations, 0) as late_cancellations,
    case when a.appointments_due > 0 then round(1.0 * a.noshows / a.appointments_due, 3) end as noshow_rate,
    case when a.appointments_due > 0 then round(1.0 * a.late_cancellations / a.appointments_due, 3) end as late_cancel_rate,
    d.max_induction_gap_days,
    d.max_maintenance_gap_days,
    p.preparation_sessions_before_first_dose > 0 as has_preparation_before_first_dose,
    p.is_induction_completed,
    d.has_induction_gap_over_7d,
    d.has_maintenance_gap_over_14d,
    coalesce(c.has_baseline_assessment, false) as has_baseline_assessment,
    case when p.first_dose_at is not null then coalesce(c.has_end_of_induction_assessment, false) end as has_end_of_induction_assessment,
    case when p.first_dose_at is not null then coalesce(c.has_followup_assessment_120_240d, false) end as has_followup_assessment_120_240d,
    p.is_dropout,
    p.first_dose_at,
    p.last_attended_at,
    p.as_of_at
from pathway as p
left join {{ ref('int_episode_dosing_summarised') }} as d on d.episode_key = p.episode_key
left join appointments as a on a.episode_key = p.episode_key
left join cadence as c on c.episode_key = p.episode_key
