-- depends_on: {{ ref('stg_raw__touched_patients') }} (the patients a delta build recomputes)
-- depends_on: {{ ref('stg_ehr__patient_merges') }} (delta builds also recompute chart-merge partners)
-- depends_on: {{ source('raw', 'events') }}
{#- Grain: one row per outcome score (observation_id) of PHQ-9, GAD-7 or PCL-5 inside an episode,
    with its baseline comparison (int_assessment_series).
    Incremental per patient like its source (macros/incremental.sql). -#}
{{ kap_incremental_config('patient') }}
select
    observation_id,
    episode_key,
    patient_key,
    instrument,
    case
        when instrument = 'phq9' then
            case when score <= 4 then 'minimal' when score <= 9 then 'mild' when score <= 14 then 'moderate'
                 when score <= 19 then 'moderately_severe' else 'severe' end
        when instrument = 'gad7' then
            case when score <= 4 then 'minimal' when score <= 9 then 'mild' when score <= 14 then 'moderate'
                 else 'severe' end
        when instrument = 'pcl5' then
            case when score >= 33 then 'provisional_ptsd' else 'below_threshold' end
    end as severity_band,
    score,
    baseline_score,
    pct_change_from_baseline,
    days_from_first_dose,
    is_baseline,
    is_post_dose,
    meets_response,
    meets_remission,
    is_relapse_score,
    scored_date,
    scored_at
from {{ ref('int_assessment_series') }}
where {{ kap_incremental_filter('patient') }}
