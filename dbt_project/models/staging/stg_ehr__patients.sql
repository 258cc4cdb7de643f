{#- Grain: one row per patient_key (the latest current Patient version; a patient re-exported under
    several Patient ids keeps the most recently recorded one). -#}
with versions as (
    select
        patient_key,
        source_record_id,
        {{ json_integer('payload', 'birth_year') }} as birth_year,
        {{ json_text('payload', 'gender') }} as gender,
        {{ json_text('payload', 'state') }} as state,
        {{ json_text('payload', 'zip3') }} as zip3,
        {{ json_text('payload', 'clinic_id') }} as clinic_id,
        coalesce({{ json_boolean('payload', 'is_deceased') }}, false) as is_deceased,
        occurred_at,
        recorded_at,
        row_number() over (partition by {{ kap_survivor_key('patient_key') }} order by recorded_at desc, event_id desc) as recency
    from {{ ref('stg_raw__current_events') }}
    where event_type in ('patient_registered', 'patient_updated')
      and patient_key is not null
)

select
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    source_record_id,
    clinic_id,
    gender,
    state,
    zip3,
    birth_year,
    is_deceased,
    recorded_at
from versions
where recency = 1
