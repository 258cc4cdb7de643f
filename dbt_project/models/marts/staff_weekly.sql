{#- Grain: one row per clinic, member of staff and week (staff_week_key = clinic_id:staff_id:
    week_start; week_start is the Monday of the clinic's local week, as adherence_weekly, macro kap_week_start) in
    which the staff member had an attended contact or a due appointment at the clinic.
    Rules (ours):
    - sessions by type: attended sessions the staff member led (int_staff_contacts);
      dosing_sessions_supervised: doses whose dosing clinician (log clinician_id, else the dose
      Encounter's participant) is the staff member; chair_minutes: dose start to end of monitoring
      (else to dose end) of those doses, as clinic_daily;
    - active_caseload: distinct episodes with an attended contact with the staff member at the
      clinic in the 30 days up to the week's last day (Sunday, or now when earlier);
    - appointments_due, noshows, late_cancellations: the staff member's appointments (participant)
      starting that week at or before now; late cancel = cancelled < 24 h before the start
      (DOMAIN.md section 4). Counts are not suppressed (no patient counts a person could be singled
      out by: one staff member's own workload). -#}
with contacts as (
    select
        *,
        {{ kap_week_start('contact_date') }} as week_start
    from {{ ref('int_staff_contacts') }}
    where clinic_id is not null
),

appointments as (
    select
        a.clinic_id,
        r.staff_id,
        {{ kap_week_start(local_date('a.start_at', 'tz.time_zone')) }} as week_start,
        count(*) as appointments_due,
        sum(case when a.appointment_status = 'noshow' then 1 else 0 end) as noshows,
        sum(case when a.appointment_status = 'cancelled' and a.cancelled_at is not null
                  and {{ dbt.datediff('a.cancelled_at', 'a.start_at', 'minute') }} < 24 * 60
                 then 1 else 0 end) as late_cancellations
    from {{ ref('stg_ehr__appointments') }} as a
    inner join {{ ref('int_staff_references') }} as r on r.staff_ref = a.practitioner_id
    left join {{ ref('int_clinic_time_zones') }} as tz on tz.clinic_id = a.clinic_id
    where a.clinic_id is not null
      and a.start_at <= {{ kap_now() }}
    group by 1, 2, 3
),

led as (
    select
        clinic_id,
        staff_id,
        week_start,
        sum(case when session_type <> 'dosing' then 1 else 0 end) as sessions_led,
        sum(case when session_type = 'consult' then 1 else 0 end) as consult_sessions,
        sum(case when session_type = 'preparation' then 1 else 0 end) as preparation_sessions,
        sum(case when session_type = 'integration' then 1 else 0 end) as integration_sessions,
        sum(case when session_type = 'psychotherapy' then 1 else 0 end) as psychotherapy_sessions,
        sum(case when session_type = 'dosing' then 1 else 0 end) as dosing_sessions_supervised,
        sum(case when session_type = 'dosing' then chair_minutes else 0 end) as chair_minutes
    from contacts
    group by 1, 2, 3
),

spine as (
    select clinic_id, staff_id, week_start from led
    union
    select clinic_id, staff_id, week_start from appointments
),

weeks as (
    select
        s.*,
        cast(case when {{ dbt.dateadd('day', 6, 's.week_start') }} < {{ kap_now() }}
                  then {{ dbt.dateadd('day', 6, 's.week_start') }}
                  else {{ kap_now() }} end as date) as caseload_date
    from spine as s
),

caseload as (
    select
        w.clinic_id,
        w.staff_id,
        w.week_start,
        count(distinct c.episode_key) as active_caseload
    from weeks as w
    inner join contacts as c
        on c.clinic_id = w.clinic_id
        and c.staff_id = w.staff_id
        and c.contact_date <= w.caseload_date
        and c.contact_date > cast({{ dbt.dateadd('day', -30, 'w.caseload_date') }} as date)
    group by 1, 2, 3
)

select
    w.clinic_id || ':' || w.staff_id || ':' || cast(w.week_start as {{ dbt.type_string() }}) as staff_week_key,
    w.clinic_id,
    w.staff_id,
    coalesce(st.staff_role, 'other') as staff_role,
    coalesce(l.sessions_led, 0) as sessions_led,
    coalesce(l.consult_sessions, 0) as consult_sessions,
    coalesce(l.preparation_sessions, 0) as preparation_sessions,
    coalesce(l.integration_sessions, 0) as integration_sessions,
    coalesce(l.psychotherapy_sessions, 0) as psychotherapy_sessions,
    coalesce(l.dosing_sessions_supervised, 0) as dosing_sessions_supervised,
    coalesce(l.chair_minutes, 0) as chair_minutes,
    coalesce(cl.active_caseload, 0) as active_caseload,
    coalesce(a.appointments_due, 0) as appointments_due,
    coalesce(a.noshows, 0) as noshows,
    coalesce(a.late_cancellations, 0) as late_cancellations,
    w.week_start
from weeks as w
left join {{ ref('int_staff') }} as st on st.staff_id = w.staff_id
left join led as l on l.clinic_id = w.clinic_id and l.staff_id = w.staff_id and l.week_start = w.week_start
left join caseload as cl on cl.clinic_id = w.clinic_id and cl.staff_id = w.staff_id and cl.week_start = w.week_start
left join appointments as a on a.clinic_id = w.clinic_id and a.staff_id = w.staff_id and a.week_start = w.week_start
