{#- Grain: one row per scored Observation (current version): PHQ-9, GAD-7, PCL-5, PHQ-2, CADSS,
    CADSS-6, MOAA/S. scored_at is the Observation's effective time (event occurred_at). -#}
select
    {{ source_key('Observation', json_text('payload', 'observation_id')) }} as observation_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    {{ source_key('Encounter', json_text('payload', 'encounter_id')) }} as encounter_id,
    lower({{ json_text('payload', 'instrument') }}) as instrument,
    {{ json_text('payload', 'code') }} as code,
    lower({{ json_text('payload', 'status') }}) as observation_status,
    {{ json_number('payload', 'score') }} as score,
    occurred_at as scored_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type = 'assessment_scored'
