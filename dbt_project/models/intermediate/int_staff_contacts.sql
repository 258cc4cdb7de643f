{#- Grain: one row per attended session with a member of staff (contact_key): every attended
    consult, preparation, integration, psychotherapy and discharge session
    (int_therapy_sessions_unified) and every dosing session (int_dose_series).
    Rules (ours): who led a non-dosing session is the note's therapist_id, else the Encounter's
    participant; who supervised a dose is the dosing log's clinician_id, else the participant of
    the dose's Encounter. The reference is resolved to a staff_id by int_staff_references. A
    session without any staff reference is left out (it has no one to credit). is_therapy: a
    preparation, integration or psychotherapy session - the sessions continuity is measured on.
    contact_date is the clinic's local day (session_date / dose_date, macro local_date). -#}
with sessions as (
    select
        'session:' || session_key as contact_key,
        session_key,
        cast(null as {{ dbt.type_string() }}) as dose_key,
        episode_key,
        patient_key,
        clinic_id,
        coalesce(therapist_id, practitioner_id) as staff_ref,
        session_type,
        start_at as contact_at,
        session_date as contact_date,
        cast(null as {{ dbt.type_int() }}) as chair_minutes
    from {{ ref('int_therapy_sessions_unified') }}
    where is_attended
),

doses as (
    select
        'dose:' || d.dose_key as contact_key,
        cast(null as {{ dbt.type_string() }}) as session_key,
        d.dose_key,
        d.episode_key,
        d.patient_key,
        d.clinic_id,
        coalesce(d.clinician_id, e.practitioner_id) as staff_ref,
        'dosing' as session_type,
        d.start_at as contact_at,
        d.dose_date as contact_date,
        cast(coalesce({{ dbt.datediff('d.start_at', 'd.monitoring_end_at', 'minute') }},
                      {{ dbt.datediff('d.start_at', 'd.end_at', 'minute') }}, 0) as {{ dbt.type_int() }}) as chair_minutes
    from {{ ref('int_dose_series') }} as d
    left join {{ ref('stg_ehr__encounters') }} as e on e.encounter_id = d.encounter_id
),

contacts as (
    select * from sessions
    union all
    select * from doses
)

select
    c.contact_key,
    c.session_key,
    c.dose_key,
    c.episode_key,
    c.patient_key,
    c.clinic_id,
    r.staff_id,
    s.staff_role,
    c.session_type,
    c.session_type in ('preparation', 'integration', 'psychotherapy') as is_therapy,
    c.chair_minutes,
    c.contact_date,
    c.contact_at
from contacts as c
inner join {{ ref('int_staff_references') }} as r on r.staff_ref = c.staff_ref
inner join {{ ref('int_staff') }} as s on s.staff_id = r.staff_id
where c.contact_at is not null
