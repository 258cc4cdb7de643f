{#- Grain: one row per patient episode and member of staff who had an attended contact in it
    (care_team_key = episode_key:staff_id). Who cared for each episode: the staff member's role,
    first and last contact, and attended sessions by type (int_staff_contacts).
    Rule (ours): the episode's usual therapist is the staff member who led the most of its
    preparation, integration and psychotherapy sessions; a tie goes to the one seen first, then to
    the lower staff_id. Staff appear only by id and role. -#}
with contacts as (
    select * from {{ ref('int_staff_contacts') }}
    where episode_key is not null
),

members as (
    select
        episode_key,
        staff_id,
        max(patient_key) as patient_key,
        max(staff_role) as staff_role,
        count(*) as sessions_total,
        sum(case when session_type = 'consult' then 1 else 0 end) as consult_sessions,
        sum(case when session_type = 'preparation' then 1 else 0 end) as preparation_sessions,
        sum(case when session_type = 'dosing' then 1 else 0 end) as dosing_sessions,
        sum(case when session_type = 'integration' then 1 else 0 end) as integration_sessions,
        sum(case when session_type = 'psychotherapy' then 1 else 0 end) as psychotherapy_sessions,
        sum(case when is_therapy then 1 else 0 end) as therapy_sessions,
        min(case when is_therapy then contact_at end) as first_therapy_at,
        min(contact_at) as first_contact_at,
        max(contact_at) as last_contact_at
    from contacts
    group by episode_key, staff_id
),

ranked as (
    select
        *,
        row_number() over (
            partition by episode_key
            order by therapy_sessions desc, first_therapy_at, staff_id
        ) as therapy_rank
    from members
)

select
    r.episode_key || ':' || r.staff_id as care_team_key,
    r.episode_key,
    r.patient_key,
    p.clinic_id,
    r.staff_id,
    r.staff_role,
    r.sessions_total,
    r.consult_sessions,
    r.preparation_sessions,
    r.dosing_sessions,
    r.integration_sessions,
    r.psychotherapy_sessions,
    r.therapy_sessions,
    (r.therapy_rank = 1 and r.therapy_sessions > 0) as is_usual_therapist,
    r.first_contact_at,
    r.last_contact_at
from ranked as r
left join {{ ref('int_patient_episodes') }} as p on p.episode_key = r.episode_key
