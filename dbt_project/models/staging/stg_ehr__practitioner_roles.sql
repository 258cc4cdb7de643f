{#- Grain: one row per PractitionerRole (role_id), current version: a role a member of staff
    holds, mapped at ingest to prescriber | dosing_clinician | therapist | other (docs/inputs.md). -#}
select
    {{ json_text('payload', 'role_id') }} as role_id,
    {{ json_text('payload', 'staff_ref') }} as staff_ref,
    {{ json_text('payload', 'clinic_id') }} as clinic_id,
    coalesce({{ json_text('payload', 'role') }}, 'other') as staff_role,
    {{ json_text('payload', 'role_source') }} as role_source,
    {{ json_text('payload', 'role_code') }} as role_code,
    coalesce({{ json_boolean('payload', 'is_active') }}, true) as is_active,
    {{ json_timestamp('payload', 'start_at') }} as start_at,
    {{ json_timestamp('payload', 'end_at') }} as end_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type = 'staff_role_recorded'
