select
    {{ source_key('Condition', json_text('payload', 'condition_id')) }} as condition_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    {{ json_text('payload', 'code_system') }} as code_system,
    {{ json_text('payload', 'code') }} as condition_code,
    {{ json_text('payload', 'category') }} as category,
    {{ json_text('payload', 'clinical_status') }} as clinical_status,
    {{ json_text('payload', 'verification_status') }} as verification_status,
    coalesce({{ json_boolean('payload', 'is_contraindication') }}, false) as is_contraindication,
    coalesce({{ json_timestamp('payload', 'recorded_at') }}, occurred_at) as condition_recorded_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type = 'condition_recorded'
