{#- Grain: one row per MedicationAdministration whose current version is a given dose
    (completed / in-progress). A later not-done version replaces it and it drops out here. -#}
select
    {{ source_key('MedicationAdministration', json_text('payload', 'administration_id')) }} as administration_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    {{ source_key('Encounter', json_text('payload', 'encounter_id')) }} as encounter_id,
    {{ json_text('payload', 'clinic_id') }} as clinic_id,
    lower({{ json_text('payload', 'drug') }}) as drug,
    {{ json_text('payload', 'rxnorm_code') }} as rxnorm_code,
    upper({{ json_text('payload', 'route') }}) as route,
    {{ json_number('payload', 'dose_mg') }} as dose_mg,
    lower({{ json_text('payload', 'status') }}) as administration_status,
    coalesce({{ json_timestamp('payload', 'start_at') }}, occurred_at) as start_at,
    {{ json_timestamp('payload', 'end_at') }} as end_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type = 'medication_administered'
