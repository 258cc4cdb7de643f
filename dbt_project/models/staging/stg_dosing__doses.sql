{#- Grain: one row per dosing session of the dosing log (dosing_id), current version: an amended
    row replaces the earlier one, a voided row removes the session. -#}
select
    {{ source_key('dosing', json_text('payload', 'dosing_id')) }} as dosing_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    {{ json_text('payload', 'clinic_id') }} as clinic_id,
    {{ json_text('payload', 'clinician_id') }} as clinician_id,
    upper({{ json_text('payload', 'route') }}) as route,
    lower({{ json_text('payload', 'drug') }}) as drug,
    lower({{ json_text('payload', 'setting') }}) as setting,
    {{ json_number('payload', 'dose_mg') }} as dose_mg,
    {{ json_number('payload', 'dose_mg_per_kg') }} as dose_mg_per_kg,
    {{ json_number('payload', 'weight_kg') }} as weight_kg,
    {{ json_integer('payload', 'bp_pre_systolic') }} as bp_pre_systolic,
    {{ json_integer('payload', 'bp_pre_diastolic') }} as bp_pre_diastolic,
    {{ json_integer('payload', 'bp_40min_systolic') }} as bp_40min_systolic,
    {{ json_integer('payload', 'bp_40min_diastolic') }} as bp_40min_diastolic,
    {{ json_integer('payload', 'bp_discharge_systolic') }} as bp_discharge_systolic,
    {{ json_integer('payload', 'bp_discharge_diastolic') }} as bp_discharge_diastolic,
    {{ json_integer('payload', 'heart_rate_pre') }} as heart_rate_pre,
    {{ json_integer('payload', 'spo2_min') }} as spo2_min,
    {{ json_integer('payload', 'cadss_total') }} as cadss_total,
    {{ json_integer('payload', 'moaas_min') }} as moaas_min,
    coalesce({{ json_boolean('payload', 'is_booster') }}, false) as is_booster,
    coalesce({{ json_boolean('payload', 'is_amended') }}, false) as is_amended,
    {{ json_date('payload', 'rems_form_submitted_on') }} as rems_form_submitted_on,
    coalesce({{ json_timestamp('payload', 'start_at') }}, occurred_at) as start_at,
    {{ json_timestamp('payload', 'end_at') }} as end_at,
    {{ json_timestamp('payload', 'monitoring_end_at') }} as monitoring_end_at,
    versions_known,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type = 'dose_administered'
