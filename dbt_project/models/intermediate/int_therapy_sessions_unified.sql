-- depends_on: {{ ref('stg_raw__touched_patients') }} (the patients a delta build recomputes)
-- depends_on: {{ ref('stg_ehr__patient_merges') }} (delta builds also recompute chart-merge partners)
-- depends_on: {{ source('raw', 'events') }}
{#- Grain: one row per non-dosing session (session_key): consult, preparation, integration,
    psychotherapy, discharge. Rule (ours), the same as for doses: an EHR Encounter and a therapy
    note are one session when they share patient, local day of start (the clinic's, macro
    local_date) and session type (paired in
    start order). The EHR gives the status, the note fills what the EHR lacks; the session counts
    as attended when either source says it was attended. The episode is the Encounter's
    EpisodeOfCare when it names one, else the episode window holding the start. KAP scope (ours):
    a session outside every episode, and a psychotherapy session before its episode started (the
    patient's therapy elsewhere, earlier), is not KAP care and is left out.
    note_tags (ours): adverse-event tags (ae_*) are kept only when the session starts within 72 h
    after one of the patient's doses (the integration window, DOMAIN 4) - a screening or
    preparation note's "hypertension" is a finding, not an adverse event; risk tags always stay.
    Incremental per patient (macros/incremental.sql): every row is one patient's, computed from
    that patient's records only, so a nightly build recomputes just the touched patients. -#}
{{ kap_incremental_config('patient') }}
with encounters as (
    select
        e.*,
        {{ local_date('e.start_at', 'tz.time_zone') }} as session_date,
        row_number() over (
            partition by e.patient_key, {{ local_date('e.start_at', 'tz.time_zone') }}, e.session_type
            order by e.start_at, e.encounter_id
        ) as day_slot
    from {{ ref('stg_ehr__encounters') }} as e
    left join {{ ref('int_clinic_time_zones') }} as tz
        on tz.clinic_id = e.clinic_id
    where e.session_type in ('consult', 'preparation', 'integration', 'psychotherapy', 'discharge')
      and e.patient_key is not null
      and {{ kap_incremental_filter('patient', 'e', 'record_patient_key') }}
),

notes as (
    select
        n.*,
        {{ local_date('n.start_at', 'tz.time_zone') }} as session_date,
        row_number() over (
            partition by n.patient_key, {{ local_date('n.start_at', 'tz.time_zone') }}, n.session_type
            order by n.start_at, n.note_id
        ) as day_slot
    from {{ ref('stg_notes__therapy_notes') }} as n
    left join {{ ref('int_clinic_time_zones') }} as tz
        on tz.clinic_id = n.clinic_id
    where n.patient_key is not null
      and {{ kap_incremental_filter('patient', 'n', 'record_patient_key') }}
),

paired as (
    select
        case when e.encounter_id is not null then 'enc-' || e.encounter_id
             else 'note-' || n.note_id end as session_key,
        coalesce(e.patient_key, n.patient_key) as patient_key,
        coalesce(e.clinic_id, n.clinic_id) as clinic_id,
        coalesce(e.session_type, n.session_type) as session_type,
        e.encounter_id,
        n.note_id,
        e.appointment_id,
        e.episode_id,
        e.practitioner_id,
        n.therapist_id,
        case when e.encounter_id is not null and n.note_id is not null then 'both'
             when e.encounter_id is not null then 'ehr_only'
             else 'notes_only' end as source_match,
        e.encounter_status,
        e.encounter_class,
        e.cpt_code,
        n.modality,
        n.tags as note_tags,
        coalesce(e.duration_min, n.duration_min) as duration_min,
        (coalesce(e.is_attended, false) or coalesce(n.is_attended, false)) as is_attended,
        coalesce(e.session_date, n.session_date) as session_date,
        coalesce(e.start_at, n.start_at) as start_at,
        coalesce(e.end_at, n.end_at) as end_at
    from encounters as e
    full outer join notes as n
        on e.patient_key = n.patient_key
        and e.session_date = n.session_date
        and e.session_type = n.session_type
        and e.day_slot = n.day_slot
),

after_dose as (
    -- sessions with tags that start at or after one of the patient's doses, at most 72 h later
    select distinct p.session_key
    from paired as p
    inner join {{ ref('int_doses_unified') }} as d
        on d.patient_key = p.patient_key
        and d.start_at <= p.start_at
        and p.start_at <= {{ dbt.dateadd('hour', 72, 'd.start_at') }}
    where p.note_tags is not null
)

select
    p.session_key,
    p.patient_key,
    coalesce(named.episode_key, windowed.episode_key) as episode_key,
    p.clinic_id,
    p.encounter_id,
    p.note_id,
    p.appointment_id,
    p.practitioner_id,
    p.therapist_id,
    p.session_type,
    p.source_match,
    p.encounter_status,
    p.encounter_class,
    p.cpt_code,
    p.modality,
    case when a.session_key is not null then p.note_tags
         else {{ drop_adverse_event_tags('p.note_tags') }} end as note_tags,
    p.duration_min,
    p.is_attended,
    p.session_date,
    p.start_at,
    p.end_at
from paired as p
left join after_dose as a
    on a.session_key = p.session_key
left join {{ ref('int_patient_episodes') }} as named
    on named.source_episode_id = p.episode_id
    and named.patient_key = p.patient_key
left join {{ ref('int_patient_episodes') }} as windowed
    on {{ episode_window_join('windowed', 'p.patient_key', 'p.start_at') }}
where coalesce(named.episode_key, windowed.episode_key) is not null
  and not (p.session_type = 'psychotherapy' and p.start_at < coalesce(named.start_at, windowed.start_at))
