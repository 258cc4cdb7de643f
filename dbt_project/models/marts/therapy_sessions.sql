-- depends_on: {{ ref('stg_raw__touched_patients') }} (the patients a delta build recomputes)
-- depends_on: {{ ref('stg_ehr__patient_merges') }} (delta builds also recompute chart-merge partners)
-- depends_on: {{ source('raw', 'events') }}
{#- Grain: one row per non-dosing session (session_key): consult, preparation, integration,
    psychotherapy, discharge; one session counted once across Encounters and therapy notes.
    Incremental per patient like its source (macros/incremental.sql). -#}
{{ kap_incremental_config('patient') }}
select
    session_key,
    episode_key,
    patient_key,
    clinic_id,
    encounter_id,
    note_id,
    appointment_id,
    practitioner_id,
    therapist_id,
    session_type,
    source_match,
    encounter_status,
    encounter_class,
    cpt_code,
    modality,
    note_tags,
    duration_min,
    is_attended,
    encounter_class = 'VR' as is_telehealth,
    session_date,
    start_at,
    end_at
from {{ ref('int_therapy_sessions_unified') }}
where {{ kap_incremental_filter('patient') }}
