{#- Grain: one row per clinic_id (an Organization and a Location with the same id are one clinic;
    the Organization wins). time_zone: the FHIR timezone extension
    (http://hl7.org/fhir/StructureDefinition/timezone) of the Organization, else of the Location. -#}
with clinics as (
    select
        {{ json_text('payload', 'clinic_id') }} as clinic_id,
        {{ json_text('payload', 'name') }} as clinic_name,
        {{ json_text('payload', 'state') }} as state,
        {{ json_text('payload', 'resource_type') }} as resource_type,
        {{ json_text('payload', 'time_zone') }} as time_zone,
        recorded_at,
        row_number() over (
            partition by {{ json_text('payload', 'clinic_id') }}
            order by case when {{ json_text('payload', 'resource_type') }} = 'Organization' then 0 else 1 end,
                     recorded_at desc, event_id desc
        ) as preference
    from {{ ref('stg_raw__current_events') }}
    where event_type = 'clinic_registered'
),

zones as (
    select clinic_id, time_zone,
        row_number() over (
            partition by clinic_id order by preference
        ) as zone_preference
    from clinics
    where time_zone is not null
)

select c.clinic_id, c.clinic_name, c.state, c.resource_type, z.time_zone, c.recorded_at
from clinics as c
left join zones as z on z.clinic_id = c.clinic_id and z.zone_preference = 1
where c.preference = 1 and c.clinic_id is not null
