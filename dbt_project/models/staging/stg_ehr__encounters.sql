{#- Grain: one row per encounter (session), current version. session_type comes from the event
    type (encounter_<type>), falling back to the payload. is_kap_session (ours): a KAP session type
    (consult, preparation, dosing, integration, psychotherapy, discharge); 'other' encounters
    (the rest of an EHR history: check-ups, births, emergencies) are not KAP care. -#}
select
    {{ source_key('Encounter', json_text('payload', 'encounter_id')) }} as encounter_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    {{ source_key('Appointment', json_text('payload', 'appointment_id')) }} as appointment_id,
    {{ source_key('EpisodeOfCare', json_text('payload', 'episode_id')) }} as episode_id,
    {{ json_text('payload', 'clinic_id') }} as clinic_id,
    {{ json_text('payload', 'practitioner_id') }} as practitioner_id,
    coalesce(nullif(replace(event_type, 'encounter_', ''), 'other'),
             {{ json_text('payload', 'session_type') }}, 'other') as session_type,
    coalesce(nullif(replace(event_type, 'encounter_', ''), 'other'),
             {{ json_text('payload', 'session_type') }}, 'other') <> 'other' as is_kap_session,
    lower({{ json_text('payload', 'status') }}) as encounter_status,
    {{ json_text('payload', 'encounter_class') }} as encounter_class,
    {{ json_text('payload', 'cpt_code') }} as cpt_code,
    {{ json_number('payload', 'duration_min') }} as duration_min,
    lower(coalesce({{ json_text('payload', 'status') }}, '')) in
        ('finished', 'in-progress', 'arrived', 'triaged', 'onleave', 'completed') as is_attended,
    coalesce({{ json_timestamp('payload', 'start_at') }}, occurred_at) as start_at,
    {{ json_timestamp('payload', 'end_at') }} as end_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where {{ kap_starts_with('event_type', 'encounter_') }}
