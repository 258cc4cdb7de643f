{#- Grain: one row per patient episode (episode_key): the dated milestones of the pathway and the
    phase at "now" (var as_of, else the latest recorded_at: macro kap_now).
    Rules (ours unless DOMAIN.md section 4 says otherwise):
    - referral: the first KAP referral (stg_ehr__referrals.is_kap_referral) in the episode window; screening: the first consult session or
      screening decision; the screening result is the latest decision in the episode;
    - preparation sessions: attended preparation sessions in the episode (any time);
      preparation before first dose (DOMAIN 4): at least one attended before dose 1;
    - discharge: the first attended discharge encounter, else the EpisodeOfCare closed as finished;
      an EpisodeOfCare closed otherwise (cancelled) ends the episode as 'closed';
    - dropout (DOMAIN 4, ours): an episode not discharged, not closed and not screened out whose
      last attended session or dose (else its start) lies >= var dropout_days (30) days before
      now; dropped_out_at = that last activity + 30 days;
    - current_phase: the furthest milestone reached: discharged > closed > dropped_out >
      screened_out (ineligible, never dosed) > maintenance > induction > preparation > screening >
      referral. -#}
with episodes as (
    select * from {{ ref('int_patient_episodes') }}
),

referrals as (
    select
        ep.episode_key,
        r.referred_at,
        r.is_self_referral,
        row_number() over (partition by ep.episode_key order by r.referred_at, r.referral_id) as n
    from {{ ref('stg_ehr__referrals') }} as r
    inner join episodes as ep
        on {{ episode_window_join('ep', 'r.patient_key', 'r.referred_at') }}
    where r.is_kap_referral
),

decisions as (
    select
        ep.episode_key,
        d.decision,
        d.reason_code,
        d.decided_at,
        row_number() over (partition by ep.episode_key order by d.decided_at desc, d.observation_id desc) as recency,
        min(d.decided_at) over (partition by ep.episode_key) as first_decided_at
    from {{ ref('stg_ehr__screening_decisions') }} as d
    inner join episodes as ep
        on {{ episode_window_join('ep', 'd.patient_key', 'd.decided_at') }}
),

sessions as (
    select
        episode_key,
        min(case when session_type = 'consult' then start_at end) as first_consult_at,
        min(case when session_type = 'preparation' and is_attended then start_at end) as first_preparation_at,
        sum(case when session_type = 'preparation' and is_attended then 1 else 0 end) as preparation_sessions,
        min(case when session_type = 'discharge' and is_attended then start_at end) as discharge_session_at,
        max(case when is_attended then start_at end) as last_attended_session_at
    from {{ ref('int_therapy_sessions_unified') }}
    where episode_key is not null
    group by episode_key
),

prep_before_dose as (
    select s.episode_key, count(*) as preparation_sessions_before_first_dose
    from {{ ref('int_therapy_sessions_unified') }} as s
    inner join {{ ref('int_episode_dosing_summarised') }} as d
        on d.episode_key = s.episode_key
    where s.session_type = 'preparation'
      and s.is_attended
      and s.start_at < d.first_dose_at
    group by s.episode_key
),

assembled as (
    select
        ep.episode_key,
        ep.patient_key,
        ep.episode_seq,
        ep.episode_origin,
        ep.clinic_id,
        ep.episode_status,
        ep.start_at as episode_start_at,
        r.referred_at,
        coalesce(r.is_self_referral, false) as is_self_referral,
        dec.decision as screening_result,
        dec.reason_code as screening_reason_code,
        case when s.first_consult_at is null then dec.first_decided_at
             when dec.first_decided_at is null then s.first_consult_at
             when s.first_consult_at < dec.first_decided_at then s.first_consult_at
             else dec.first_decided_at end as screening_at,
        case when dec.decision = 'ineligible' then dec.decided_at end as screened_out_at,
        coalesce(s.preparation_sessions, 0) as preparation_sessions,
        coalesce(pb.preparation_sessions_before_first_dose, 0) as preparation_sessions_before_first_dose,
        s.first_preparation_at,
        dose.episode_route,
        dose.episode_drug,
        dose.routes,
        dose.first_dose_at,
        coalesce(dose.doses_total, 0) as doses_total,
        coalesce(dose.induction_doses, 0) as induction_doses,
        coalesce(dose.maintenance_doses, 0) as maintenance_doses,
        dose.induction_target_doses,
        dose.induction_window_days,
        coalesce(dose.is_induction_completed, false) as is_induction_completed,
        dose.induction_completed_at,
        dose.maintenance_started_at,
        dose.last_dose_at,
        coalesce(s.discharge_session_at,
                 case when ep.is_closed and ep.episode_status = 'finished'
                      then coalesce(ep.end_at, ep.start_at) end) as discharged_at,
        case when ep.is_closed and ep.episode_status <> 'finished' and s.discharge_session_at is null
             then coalesce(ep.end_at, ep.start_at) end as closed_at,
        case when s.last_attended_session_at is null then dose.last_dose_at
             when dose.last_dose_at is null then s.last_attended_session_at
             when dose.last_dose_at > s.last_attended_session_at then dose.last_dose_at
             else s.last_attended_session_at end as last_attended_at,
        {{ kap_now() }} as as_of_at
    from episodes as ep
    left join referrals as r on r.episode_key = ep.episode_key and r.n = 1
    left join decisions as dec on dec.episode_key = ep.episode_key and dec.recency = 1
    left join sessions as s on s.episode_key = ep.episode_key
    left join prep_before_dose as pb on pb.episode_key = ep.episode_key
    left join {{ ref('int_episode_dosing_summarised') }} as dose on dose.episode_key = ep.episode_key
),

with_dropout as (
    select
        assembled.*,
        (
            discharged_at is null
            and closed_at is null
            and not (screening_result = 'ineligible' and first_dose_at is null)
            and {{ dbt.datediff('coalesce(last_attended_at, episode_start_at)', 'as_of_at', 'day') }} >= {{ var('dropout_days') }}
        ) as is_dropout
    from assembled
)

select
    with_dropout.*,
    case when is_dropout
         then {{ dbt.dateadd('day', var('dropout_days'), 'coalesce(last_attended_at, episode_start_at)') }}
    end as dropped_out_at,
    case
        when discharged_at is not null then 'discharged'
        when closed_at is not null then 'closed'
        when is_dropout then 'dropped_out'
        when screening_result = 'ineligible' and first_dose_at is null then 'screened_out'
        when maintenance_started_at is not null then 'maintenance'
        when first_dose_at is not null then 'induction'
        when first_preparation_at is not null then 'preparation'
        when screening_at is not null then 'screening'
        else 'referral'
    end as current_phase
from with_dropout
