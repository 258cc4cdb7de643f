select
    {{ source_key('Observation', json_text('payload', 'observation_id')) }} as observation_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    {{ source_key('Encounter', json_text('payload', 'encounter_id')) }} as encounter_id,
    lower({{ json_text('payload', 'measure') }}) as measure,
    {{ json_number('payload', 'systolic') }} as systolic,
    {{ json_number('payload', 'diastolic') }} as diastolic,
    {{ json_number('payload', 'value') }} as value,
    {{ json_text('payload', 'unit') }} as unit,
    lower({{ json_text('payload', 'status') }}) as observation_status,
    occurred_at as measured_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type = 'vital_signs_recorded'
