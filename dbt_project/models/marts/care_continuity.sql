{#- Grain: one row per patient episode (episode_key), as care_pathways. Continuity of therapy care,
    measured on the episode's attended preparation, integration and psychotherapy sessions with a
    known therapist (int_staff_contacts, is_therapy): N sessions, n_j of them with therapist j.
    - usual_therapist_id: as care_team.is_usual_therapist (most sessions; tie: seen first, then id).
    - upc_index: Usual Provider of Care index = max_j n_j / N (Breslau & Reeb 1975); NULL when N = 0.
    - coc_index: Bice-Boxerman Continuity of Care index = (sum_j n_j^2 - N) / (N (N - 1))
      (Bice & Boxerman 1977); 1 = one therapist, 0 = a new therapist every session; NULL when N < 2.
    - continuity_band (ours): no_therapy (N = 0), under_2_sessions (N = 1), upc_75_plus
      (UPC >= 0.75, compared in integers: 4 max n_j >= 3 N), upc_under_75.
    - is_integrated_by_preparer (ours): the first integration session at or after the first dose
      was led by a therapist who led a preparation session of the episode before the first dose;
      NULL when either is missing.
    - has_therapist_switch_in_induction (ours): a therapy session from the first dose up to 72 h
      after the last induction dose was led by another therapist than the episode's previous
      therapy session; NULL without a dose.
    - integration_known_therapist_share (ours): of the integration sessions at or after the first
      dose, the share led by a therapist the patient had an attended contact with before (any
      session type, any episode); NULL without such integration sessions.
    - coordinated_dose_share (ours): prescriber-therapist coordination - the share of the episode's
      doses followed within the 72 h integration window (DOMAIN.md section 4) by an attended
      integration session led by the episode's usual therapist: the dosing side hands each dose to
      the patient's own therapist. NULL without a dose. -#}
with episodes as (
    select episode_key, patient_key, clinic_id, episode_route
    from {{ ref('care_pathways') }}
),

contacts as (
    select * from {{ ref('int_staff_contacts') }}
),

therapy as (
    select * from contacts where is_therapy and episode_key is not null
),

doses as (
    select episode_key, dose_key, start_at, phase
    from {{ ref('int_dose_series') }}
    where episode_key is not null
),

dose_span as (
    select
        episode_key,
        min(start_at) as first_dose_at,
        max(case when phase = 'induction' then start_at end) as last_induction_dose_at
    from doses
    group by episode_key
),

per_therapist as (
    select episode_key, staff_id, count(*) as n_j, min(contact_at) as first_at
    from therapy
    group by episode_key, staff_id
),

indices as (
    select
        episode_key,
        sum(n_j) as n_sessions,
        count(*) as distinct_therapists,
        max(n_j) as usual_sessions,
        sum(n_j * n_j) as sum_sq
    from per_therapist
    group by episode_key
),

usual as (
    select episode_key, staff_id as usual_therapist_id
    from (
        select
            episode_key,
            staff_id,
            row_number() over (partition by episode_key order by n_j desc, first_at, staff_id) as rn
        from per_therapist
    ) as x
    where rn = 1
),

preparers as (
    select distinct t.episode_key, t.staff_id
    from therapy as t
    inner join dose_span as d on d.episode_key = t.episode_key
    where t.session_type = 'preparation' and t.contact_at < d.first_dose_at
),

first_integration as (
    select episode_key, staff_id
    from (
        select
            t.episode_key,
            t.staff_id,
            row_number() over (partition by t.episode_key order by t.contact_at, t.contact_key) as rn
        from therapy as t
        inner join dose_span as d on d.episode_key = t.episode_key
        where t.session_type = 'integration' and t.contact_at >= d.first_dose_at
    ) as x
    where rn = 1
),

prepared_and_integrated as (
    select
        f.episode_key,
        case when count(p.staff_id) > 0 then true else false end as has_preparer,
        max(case when p.staff_id = f.staff_id then 1 else 0 end) = 1 as is_integrated_by_preparer
    from first_integration as f
    left join preparers as p on p.episode_key = f.episode_key
    group by f.episode_key
),

sequenced as (
    select
        t.episode_key,
        t.staff_id,
        t.contact_at,
        lag(t.staff_id) over (partition by t.episode_key order by t.contact_at, t.contact_key) as previous_staff_id
    from therapy as t
),

induction_switches as (
    select
        d.episode_key,
        max(case when s.previous_staff_id is not null and s.staff_id <> s.previous_staff_id
                  and s.contact_at >= d.first_dose_at
                  and s.contact_at <= coalesce(d.last_induction_dose_at, d.first_dose_at) + interval '72 hours'
                 then 1 else 0 end) = 1 as has_therapist_switch_in_induction
    from dose_span as d
    left join sequenced as s on s.episode_key = d.episode_key
    group by d.episode_key
),

first_contacts as (
    select patient_key, staff_id, min(contact_at) as first_at
    from contacts
    group by patient_key, staff_id
),

post_dose_integrations as (
    select
        t.episode_key,
        count(*) as integrations,
        sum(case when f.first_at < t.contact_at then 1 else 0 end) as with_known_therapist
    from therapy as t
    inner join dose_span as d on d.episode_key = t.episode_key
    inner join first_contacts as f on f.patient_key = t.patient_key and f.staff_id = t.staff_id
    where t.session_type = 'integration' and t.contact_at >= d.first_dose_at
    group by t.episode_key
),

dose_handoffs as (
    select
        d.episode_key,
        d.dose_key,
        max(case when t.contact_key is not null then 1 else 0 end) as is_coordinated
    from doses as d
    left join usual as u on u.episode_key = d.episode_key
    left join therapy as t
        on t.episode_key = d.episode_key
        and t.staff_id = u.usual_therapist_id
        and t.session_type = 'integration'
        and t.contact_at >= d.start_at
        and t.contact_at <= d.start_at + interval '72 hours'
    group by d.episode_key, d.dose_key
),

coordinated as (
    select episode_key, count(*) as doses, sum(is_coordinated) as coordinated_doses
    from dose_handoffs
    group by episode_key
)

select
    e.episode_key,
    e.patient_key,
    e.clinic_id,
    e.episode_route,
    u.usual_therapist_id,
    coalesce(i.n_sessions, 0) as therapy_sessions,
    coalesce(i.distinct_therapists, 0) as distinct_therapists,
    coalesce(i.usual_sessions, 0) as usual_therapist_sessions,
    case when i.n_sessions > 0 then round(1.0 * i.usual_sessions / i.n_sessions, 4) end as upc_index,
    case when i.n_sessions >= 2
         then round(1.0 * (i.sum_sq - i.n_sessions) / (i.n_sessions * (i.n_sessions - 1)), 4) end as coc_index,
    case when coalesce(i.n_sessions, 0) = 0 then 'no_therapy'
         when i.n_sessions = 1 then 'under_2_sessions'
         when 4 * i.usual_sessions >= 3 * i.n_sessions then 'upc_75_plus'
         else 'upc_under_75' end as continuity_band,
    pi.is_integrated_by_preparer,
    sw.has_therapist_switch_in_induction,
    coalesce(pd.integrations, 0) as post_dose_integrations,
    case when pd.integrations > 0
         then round(1.0 * pd.with_known_therapist / pd.integrations, 4) end as integration_known_therapist_share,
    coalesce(co.doses, 0) as doses,
    case when co.doses > 0 then round(1.0 * co.coordinated_doses / co.doses, 4) end as coordinated_dose_share
from episodes as e
left join indices as i on i.episode_key = e.episode_key
left join usual as u on u.episode_key = e.episode_key
left join prepared_and_integrated as pi on pi.episode_key = e.episode_key and pi.has_preparer
left join induction_switches as sw on sw.episode_key = e.episode_key
left join post_dose_integrations as pd on pd.episode_key = e.episode_key
left join coordinated as co on co.episode_key = e.episode_key
