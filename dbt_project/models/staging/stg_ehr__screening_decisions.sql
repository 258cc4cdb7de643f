select
    {{ source_key('Observation', json_text('payload', 'observation_id')) }} as observation_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    {{ source_key('Encounter', json_text('payload', 'encounter_id')) }} as encounter_id,
    lower({{ json_text('payload', 'decision') }}) as decision,
    {{ json_text('payload', 'reason_code') }} as reason_code,
    lower({{ json_text('payload', 'status') }}) as observation_status,
    occurred_at as decided_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type = 'screening_decided'
