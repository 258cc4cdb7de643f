{#- Grain: one row per Practitioner (staff_id), current version. Staff are not patients: no
    patient_key. Only the id, identifiers ('system|value', to resolve conditional references; never
    published) and the role read from the qualification (the local fallback) are kept - no name. -#}
select
    {{ json_text('payload', 'staff_id') }} as staff_id,
    {{ json_string_list('payload', 'identifiers') }} as identifiers,
    {{ json_text('payload', 'qualification_role') }} as qualification_role,
    coalesce({{ json_boolean('payload', 'is_active') }}, true) as is_active,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type = 'staff_registered'
