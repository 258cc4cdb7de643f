{#- Grain: one row per clinic_id (an Organization and a Location with the same id are one clinic;
    the Organization wins). -#}
with clinics as (
    select
        {{ json_text('payload', 'clinic_id') }} as clinic_id,
        {{ json_text('payload', 'name') }} as clinic_name,
        {{ json_text('payload', 'state') }} as state,
        {{ json_text('payload', 'resource_type') }} as resource_type,
        recorded_at,
        row_number() over (
            partition by {{ json_text('payload', 'clinic_id') }}
            order by case when {{ json_text('payload', 'resource_type') }} = 'Organization' then 0 else 1 end,
                     recorded_at desc, event_id desc
        ) as preference
    from {{ ref('stg_raw__current_events') }}
    where event_type = 'clinic_registered'
)

select clinic_id, clinic_name, state, resource_type, recorded_at
from clinics
where preference = 1 and clinic_id is not null
