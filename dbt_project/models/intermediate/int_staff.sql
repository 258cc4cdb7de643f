{#- Grain: one row per member of staff (staff_id): every Practitioner and every unresolved staff
    reference (int_staff_references). Rule (ours): the staff role is the role of the member's
    active PractitionerRoles, the first of prescriber > dosing_clinician > therapist > other (a
    psychiatrist who also does therapy is a prescriber); without a mapped role, the role read from
    Practitioner.qualification (the local fallback); else 'other'. Home clinic: the organization
    of the member's first active role (by role id). Only the id and the role leave this model. -#}
with roles as (
    select
        ref.staff_id,
        r.staff_role,
        r.clinic_id,
        r.role_source,
        r.role_id,
        case r.staff_role when 'prescriber' then 1 when 'dosing_clinician' then 2
                          when 'therapist' then 3 else 4 end as role_rank
    from {{ ref('stg_ehr__practitioner_roles') }} as r
    inner join {{ ref('int_staff_references') }} as ref on ref.staff_ref = r.staff_ref
    where r.is_active
      and (r.end_at is null or r.end_at > {{ kap_now() }})
),

ranked as (
    select
        *,
        row_number() over (partition by staff_id order by role_rank, role_id) as role_pick,
        row_number() over (partition by staff_id
                           order by case when clinic_id is null then 1 else 0 end, role_id) as clinic_pick
    from roles
),

staff as (
    select distinct staff_id from {{ ref('int_staff_references') }}
)

select
    s.staff_id,
    case when role_pick.role_rank < 4 then role_pick.staff_role
         when p.qualification_role is not null then p.qualification_role
         else coalesce(role_pick.staff_role, 'other') end as staff_role,
    case when role_pick.role_rank < 4 then role_pick.role_source
         when p.qualification_role is not null then 'qualification'
         when role_pick.staff_id is not null then role_pick.role_source
         else 'none' end as role_source,
    clinic_pick.clinic_id as home_clinic_id,
    p.staff_id is not null as is_known_practitioner,
    coalesce(p.is_active, true) as is_active
from staff as s
left join {{ ref('stg_ehr__practitioners') }} as p on p.staff_id = s.staff_id
left join ranked as role_pick on role_pick.staff_id = s.staff_id and role_pick.role_pick = 1
left join ranked as clinic_pick on clinic_pick.staff_id = s.staff_id and clinic_pick.clinic_pick = 1
