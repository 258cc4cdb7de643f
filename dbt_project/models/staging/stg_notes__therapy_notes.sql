{#- Grain: one row per therapy note (note_id), current version; metadata only - the note text never
    enters the warehouse (DOMAIN.md section 6). -#}
select
    {{ source_key('note', json_text('payload', 'note_id')) }} as note_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    {{ json_text('payload', 'clinic_id') }} as clinic_id,
    {{ json_text('payload', 'therapist_id') }} as therapist_id,
    lower({{ json_text('payload', 'session_type') }}) as session_type,
    {{ json_text('payload', 'modality') }} as modality,
    lower(coalesce({{ json_text('payload', 'status') }}, 'final')) as note_status,
    {{ json_number('payload', 'duration_min') }} as duration_min,
    {{ json_integer('payload', 'text_length') }} as text_length,
    {{ json_string_list('payload', 'tags') }} as tags,
    coalesce({{ json_boolean('payload', 'attended') }}, true) as is_attended,
    coalesce({{ json_timestamp('payload', 'start_at') }}, occurred_at) as start_at,
    {{ json_timestamp('payload', 'end_at') }} as end_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type = 'therapy_note_documented'
