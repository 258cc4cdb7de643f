{#- Grain: one row per patient episode (episode_key). See int_episode_pathway for the rules.
    Dates are the clinic's local dates (macro local_date, int_clinic_time_zones). -#}
select
    episode_key,
    patient_key,
    clinic_id,
    episode_seq,
    episode_origin,
    episode_status,
    screening_result,
    screening_reason_code,
    episode_route,
    episode_drug,
    routes,
    current_phase,
    preparation_sessions,
    preparation_sessions_before_first_dose,
    doses_total,
    induction_doses,
    induction_target_doses,
    induction_window_days,
    maintenance_doses,
    is_self_referral,
    preparation_sessions_before_first_dose > 0 as has_preparation_before_first_dose,
    is_induction_completed,
    is_dropout,
    discharged_at is not null as is_discharged,
    {{ local_date('referred_at', 'time_zone') }} as referral_date,
    {{ local_date('first_dose_at', 'time_zone') }} as first_dose_date,
    episode_start_at,
    referred_at,
    screening_at,
    screened_out_at,
    first_preparation_at,
    first_dose_at,
    induction_completed_at,
    maintenance_started_at,
    last_dose_at,
    last_attended_at,
    discharged_at,
    closed_at,
    dropped_out_at,
    as_of_at
from (
    select p.*, tz.time_zone
    from {{ ref('int_episode_pathway') }} as p
    left join {{ ref('int_clinic_time_zones') }} as tz on tz.clinic_id = p.clinic_id
) as pathway
