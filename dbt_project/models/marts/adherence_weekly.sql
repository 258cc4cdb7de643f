{#- Grain: one row per clinic and week (clinic_id, week_start: the Monday of the clinic's
    local week, macro local_date) with any dose or
    appointment. The per-dose and per-appointment rules of adherence_patient, counted by the week
    of the dose / appointment start (ours), KAP appointments only (is_kap_session). Counts <= 5 are not suppressed here: small-cell
    suppression is applied at publication (DOMAIN.md section 6). -#}
with doses as (
    select
        d.clinic_id,
        {{ kap_week_start('d.dose_date') }} as week_start,
        count(*) as doses,
        sum(case when d.has_integration_72h then 1 else 0 end) as doses_with_integration_72h,
        sum(case when d.has_integration_24h then 1 else 0 end) as doses_with_integration_24h,
        sum(case when d.is_gap_flagged then 1 else 0 end) as doses_after_flagged_gap,
        sum(case when s.is_monitoring_complete then 1 else 0 end) as doses_monitoring_complete,
        -- at-home SL/PO sessions (is_monitoring_complete null) are not in the rate (DOMAIN 4)
        sum(case when s.is_monitoring_complete is not null then 1 else 0 end) as doses_monitoring_judged
    from {{ ref('int_dose_series') }} as d
    left join {{ ref('dosing_safety') }} as s on s.dose_key = d.dose_key
    where d.clinic_id is not null
    group by 1, 2
),

appointments as (
    select
        a.clinic_id,
        {{ kap_week_start(local_date('a.start_at', 'tz.time_zone')) }} as week_start,
        count(*) as appointments_due,
        sum(case when a.appointment_status = 'noshow' then 1 else 0 end) as noshows,
        sum(case when a.appointment_status = 'cancelled' and a.cancelled_at is not null
                  and {{ dbt.datediff('a.cancelled_at', 'a.start_at', 'minute') }} < 24 * 60
                 then 1 else 0 end) as late_cancellations
    from {{ ref('stg_ehr__appointments') }} as a
    left join {{ ref('int_clinic_time_zones') }} as tz on tz.clinic_id = a.clinic_id
    where a.clinic_id is not null
      and a.is_kap_session
      and a.start_at <= {{ kap_now() }}
    group by 1, 2
),

weeks as (
    select clinic_id, week_start from doses
    union
    select clinic_id, week_start from appointments
)

select
    w.clinic_id || ':' || cast(w.week_start as {{ dbt.type_string() }}) as clinic_week_key,
    w.clinic_id,
    coalesce(d.doses, 0) as doses,
    coalesce(d.doses_with_integration_72h, 0) as doses_with_integration_72h,
    coalesce(d.doses_with_integration_24h, 0) as doses_with_integration_24h,
    case when d.doses > 0 then round(1.0 * d.doses_with_integration_72h / d.doses, 3) end as integration_72h_share,
    case when d.doses > 0 then round(1.0 * d.doses_with_integration_24h / d.doses, 3) end as integration_24h_share,
    coalesce(d.doses_after_flagged_gap, 0) as doses_after_flagged_gap,
    coalesce(d.doses_monitoring_complete, 0) as doses_monitoring_complete,
    coalesce(d.doses_monitoring_judged, 0) as doses_monitoring_judged,
    case when d.doses_monitoring_judged > 0 then round(1.0 * d.doses_monitoring_complete / d.doses_monitoring_judged, 3) end as monitoring_complete_share,
    coalesce(a.appointments_due, 0) as appointments_due,
    coalesce(a.noshows, 0) as noshows,
    coalesce(a.late_cancellations, 0) as late_cancellations,
    case when a.appointments_due > 0 then round(1.0 * a.noshows / a.appointments_due, 3) end as noshow_rate,
    case when a.appointments_due > 0 then round(1.0 * a.late_cancellations / a.appointments_due, 3) end as late_cancel_rate,
    w.week_start
from weeks as w
left join doses as d on d.clinic_id = w.clinic_id and d.week_start = w.week_start
left join appointments as a on a.clinic_id = w.clinic_id and a.week_start = w.week_start
