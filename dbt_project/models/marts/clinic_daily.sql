{#- Grain: one row per clinic and day (clinic_id, activity_date) on which the clinic had any
    KAP appointment, session, dose or episode start (days without activity are absent). A day is
    the clinic's local day (macro local_date on int_clinic_time_zones: FHIR timezone extension,
    else the per-clinic setting, else KAP_TIMEZONE). Only KAP care counts (ours): appointments of
    a KAP session type, sessions and doses of an episode; the rest of an EHR history is not
    clinic activity. Rules (ours):
    - appointments_*: appointments starting that day by status (attended = fulfilled, arrived,
      checked-in); dosing_sessions: unified doses that day;
    - chair_minutes: dose start to end of monitoring (else to dose end), summed;
    - new_patients: patients whose first episode starts that day at the clinic;
    - active_episodes: episodes of the clinic started on/before the day and not yet ended before
      it; an episode ends on the first of: discharge, closure, dropout, or screening out
      (ineligible and never dosed: screened_out_at). -#}
with appointments as (
    select
        a.clinic_id,
        {{ local_date('a.start_at', 'tz.time_zone') }} as activity_date,
        count(*) as appointments_booked,
        sum(case when appointment_status in ('fulfilled', 'arrived', 'checked-in') then 1 else 0 end) as appointments_attended,
        sum(case when appointment_status = 'noshow' then 1 else 0 end) as noshows,
        sum(case when appointment_status = 'cancelled' then 1 else 0 end) as cancellations
    from {{ ref('stg_ehr__appointments') }} as a
    left join {{ ref('int_clinic_time_zones') }} as tz on tz.clinic_id = a.clinic_id
    where a.clinic_id is not null
      and a.is_kap_session
    group by 1, 2
),

doses as (
    select
        clinic_id,
        dose_date as activity_date,
        count(*) as dosing_sessions,
        count(distinct patient_key) as patients_dosed,
        sum(coalesce({{ dbt.datediff('start_at', 'monitoring_end_at', 'minute') }},
                     {{ dbt.datediff('start_at', 'end_at', 'minute') }}, 0)) as chair_minutes
    from {{ ref('int_dose_series') }}
    where clinic_id is not null
    group by 1, 2
),

sessions as (
    select
        clinic_id,
        session_date as activity_date,
        sum(case when is_attended then 1 else 0 end) as therapy_sessions_attended
    from {{ ref('int_therapy_sessions_unified') }}
    where clinic_id is not null
    group by 1, 2
),

episodes as (
    select
        p.clinic_id,
        p.episode_seq,
        {{ local_date('p.episode_start_at', 'tz.time_zone') }} as start_date,
        {{ local_date('least(p.discharged_at, p.closed_at, p.dropped_out_at,'
                      ~ ' case when p.first_dose_at is null then p.screened_out_at end)', 'tz.time_zone') }} as end_date
    from {{ ref('int_episode_pathway') }} as p
    left join {{ ref('int_clinic_time_zones') }} as tz on tz.clinic_id = p.clinic_id
    where p.clinic_id is not null
),

new_patients as (
    select clinic_id, start_date as activity_date, count(*) as new_patients
    from episodes
    where episode_seq = 1
    group by 1, 2
),

days as (
    select clinic_id, activity_date from appointments
    union
    select clinic_id, activity_date from doses
    union
    select clinic_id, activity_date from sessions
    union
    select clinic_id, activity_date from new_patients
),

active as (
    select d.clinic_id, d.activity_date, count(*) as active_episodes
    from days as d
    inner join episodes as e
        on e.clinic_id = d.clinic_id
        and e.start_date <= d.activity_date
        and (e.end_date is null or e.end_date >= d.activity_date)
    group by 1, 2
)

select
    d.clinic_id || ':' || cast(d.activity_date as {{ dbt.type_string() }}) as clinic_day_key,
    d.clinic_id,
    coalesce(a.appointments_booked, 0) as appointments_booked,
    coalesce(a.appointments_attended, 0) as appointments_attended,
    coalesce(a.noshows, 0) as noshows,
    coalesce(a.cancellations, 0) as cancellations,
    coalesce(ds.dosing_sessions, 0) as dosing_sessions,
    coalesce(ds.patients_dosed, 0) as patients_dosed,
    coalesce(ds.chair_minutes, 0) as chair_minutes,
    coalesce(s.therapy_sessions_attended, 0) as therapy_sessions_attended,
    coalesce(n.new_patients, 0) as new_patients,
    coalesce(ac.active_episodes, 0) as active_episodes,
    d.activity_date
from days as d
left join appointments as a on a.clinic_id = d.clinic_id and a.activity_date = d.activity_date
left join doses as ds on ds.clinic_id = d.clinic_id and ds.activity_date = d.activity_date
left join sessions as s on s.clinic_id = d.clinic_id and s.activity_date = d.activity_date
left join new_patients as n on n.clinic_id = d.clinic_id and n.activity_date = d.activity_date
left join active as ac on ac.clinic_id = d.clinic_id and ac.activity_date = d.activity_date
