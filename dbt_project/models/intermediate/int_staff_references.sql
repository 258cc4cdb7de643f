{#- Grain: one row per staff reference (staff_ref) seen anywhere: Encounter.participant, Appointment
    participants, dosing-log clinician_id, note therapist_id, PractitionerRole.practitioner.
    Rule (ours), first that applies: the reference is a Practitioner id; it is a PractitionerRole id
    (the role's practitioner); it is the value - or the 'type|value' tail a conditional reference
    `Practitioner?identifier=system|value` leaves - of a Practitioner identifier (one match only);
    else it stands for an unknown member of staff under its own id. -#}
with practitioners as (
    select * from {{ ref('stg_ehr__practitioners') }}
),

roles as (
    select * from {{ ref('stg_ehr__practitioner_roles') }}
),

refs as (
    select practitioner_id as staff_ref from {{ ref('stg_ehr__encounters') }}
    union
    select practitioner_id from {{ ref('stg_ehr__appointments') }}
    union
    select clinician_id from {{ ref('stg_dosing__doses') }}
    union
    select therapist_id from {{ ref('stg_notes__therapy_notes') }}
    union
    select staff_ref from roles
    union
    select staff_id from practitioners
),

by_identifier as (
    select r.staff_ref, min(p.staff_id) as staff_id, count(distinct p.staff_id) as matches
    from refs as r
    inner join practitioners as p
        on ',' || p.identifiers || ',' like '%|' || r.staff_ref || ',%'
        or ',' || p.identifiers || ',' like '%/' || r.staff_ref || ',%'
    group by r.staff_ref
),

role_targets as (
    select r.role_id, coalesce(pid.staff_id, pidf.staff_id, r.staff_ref) as staff_id
    from roles as r
    left join practitioners as pid on pid.staff_id = r.staff_ref
    left join by_identifier as pidf on pidf.staff_ref = r.staff_ref and pidf.matches = 1
)

select
    r.staff_ref,
    coalesce(p.staff_id, rt.staff_id, bi.staff_id, r.staff_ref) as staff_id,
    case when p.staff_id is not null then 'practitioner_id'
         when rt.staff_id is not null then 'practitioner_role_id'
         when bi.staff_id is not null then 'identifier'
         else 'unresolved' end as resolved_by
from refs as r
left join practitioners as p on p.staff_id = r.staff_ref
left join role_targets as rt on rt.role_id = r.staff_ref and p.staff_id is null
left join by_identifier as bi on bi.staff_ref = r.staff_ref and bi.matches = 1
where r.staff_ref is not null
