-- depends_on: {{ ref('stg_raw__touched_patients') }} (the patients a delta build recomputes)
-- depends_on: {{ ref('stg_ehr__patient_merges') }} (delta builds also recompute chart-merge partners)
{#- Grain: one row per dosing session (dose_key), one dose counted once across the EHR and the
    dosing log (int_doses_unified). Incremental per patient like int_dose_series
    (macros/incremental.sql): equal to a full rebuild, cheaper on a long history. -#}
{{ kap_incremental_config('patient') }}
-- depends_on: {{ source('raw', 'events') }}
-- depends_on: {{ ref('int_clinic_time_zones') }}
select
    dose_key,
    episode_key,
    patient_key,
    clinic_id,
    dosing_id,
    administration_id,
    encounter_id,
    clinician_id,
    source_match,
    drug,
    route,
    phase,
    dose_number,
    gap_days,
    dose_mg,
    log_dose_mg,
    ehr_dose_mg,
    dose_mg_per_kg,
    weight_kg,
    cadss_total,
    moaas_min,
    hours_to_integration,
    is_booster,
    has_source_conflict,
    is_gap_flagged,
    has_integration_72h,
    has_integration_24h,
    dose_date,
    start_at,
    end_at,
    monitoring_end_at,
    integration_at
from {{ ref('int_dose_series') }}
where {{ kap_incremental_filter('patient') }}
