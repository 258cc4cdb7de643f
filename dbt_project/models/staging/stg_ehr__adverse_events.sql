select
    {{ source_key('AdverseEvent', json_text('payload', 'adverse_event_id')) }} as adverse_event_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    {{ source_key('Encounter', json_text('payload', 'encounter_id')) }} as encounter_id,
    {{ source_key('MedicationAdministration', json_text('payload', 'suspect_administration_id')) }} as suspect_administration_id,
    {{ json_text('payload', 'event_code') }} as event_code,
    {{ json_text('payload', 'event_display') }} as event_display,
    lower({{ json_text('payload', 'seriousness') }}) as seriousness,
    lower({{ json_text('payload', 'severity') }}) as severity,
    occurred_at as adverse_event_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type = 'adverse_event_reported'
