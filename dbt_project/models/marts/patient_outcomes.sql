-- depends_on: {{ ref('stg_raw__touched_patients') }} (the patients a delta build recomputes)
-- depends_on: {{ ref('stg_ehr__patient_merges') }} (delta builds also recompute chart-merge partners)
-- depends_on: {{ source('raw', 'events') }}
{#- Grain: one row per patient episode and instrument (episode_key, instrument) with at least one
    score of PHQ-9, GAD-7 or PCL-5 in the episode. Definitions: DOMAIN.md section 4 (per-score
    flags in int_assessment_series):
    - baseline (ours): last score on/before the first dose, at most 30 days before it;
    - latest: the last score in the episode; best: the lowest score after the first dose;
    - pct_change_*: (score - baseline) / baseline x 100 (negative = better);
    - response: a post-dose score >= 50 % below baseline; remission: PHQ-9 / GAD-7 < 5;
    - days_to_response / days_to_remission: first dose date to the first qualifying score's date;
    - durability (ours): days from the first response to the first later score that no longer
      meets response (is_censored = false), or to the last score (is_censored = true);
    - relapse (ours): after response, a score >= 10 (PHQ-9; GAD-7 >= 10, PCL-5 >= 33 ours) or the
      second of two consecutive non-responding scores;
    - outcome_status (ours): 'no_baseline' (no baseline score), 'no_followup' (a baseline but no
      score after the first dose) or 'assessed'. Unknown is not "no": is_responder, has_relapse,
      durability_days, pct_change_* and days_to_response are null unless 'assessed';
      is_remitter and days_to_remission (no baseline needed) are null without a post-dose score.
      Rates use the assessed episodes as their denominator.
    Incremental per patient (macros/incremental.sql): an episode is one patient's. -#}
{{ kap_incremental_config('patient') }}
with series as (
    select * from {{ ref('int_assessment_series') }}
    where {{ kap_incremental_filter('patient') }}
),

ranked as (
    select
        series.*,
        row_number() over (partition by episode_key, instrument order by scored_at desc, observation_id desc) as from_last
    from series
),

first_non_response_after as (
    select episode_key, instrument, min(scored_at) as durability_end_at, min(scored_date) as durability_end_date
    from series
    where first_response_at is not null
      and scored_at > first_response_at
      and not meets_response
    group by episode_key, instrument
),

summary as (
    select
        episode_key,
        instrument,
        max(patient_key) as patient_key,
        count(*) as scores_total,
        sum(case when is_post_dose then 1 else 0 end) as scores_post_dose,
        max(baseline_score) as baseline_score,
        max(case when from_last = 1 then score end) as latest_score,
        min(case when is_post_dose then score end) as best_score,
        max(baseline_at) as baseline_at,
        max(case when from_last = 1 then scored_at end) as latest_at,
        max(case when from_last = 1 then scored_date end) as latest_date,
        max(first_dose_date) as first_dose_date,
        min(case when meets_response then scored_date end) as first_response_date,
        min(case when meets_remission then scored_date end) as first_remission_date,
        max(first_dose_at) as first_dose_at,
        max(first_response_at) as first_response_at,
        min(case when meets_remission then scored_at end) as first_remission_at,
        min(case when is_relapse_score then scored_at end) as relapse_at
    from ranked
    group by episode_key, instrument
),

classified as (
    select
        summary.*,
        case when baseline_score is null then 'no_baseline'
             when scores_post_dose = 0 then 'no_followup'
             else 'assessed' end as outcome_status
    from summary
)

select
    s.episode_key || ':' || s.instrument as outcome_key,
    s.episode_key,
    s.patient_key,
    s.instrument,
    s.outcome_status,
    s.scores_total,
    s.scores_post_dose,
    s.baseline_score,
    s.latest_score,
    s.best_score,
    case when s.outcome_status = 'assessed' and s.baseline_score > 0
         then round(100.0 * (s.latest_score - s.baseline_score) / s.baseline_score, 1) end as pct_change_latest,
    case when s.outcome_status = 'assessed' and s.baseline_score > 0
         then round(100.0 * (s.best_score - s.baseline_score) / s.baseline_score, 1) end as pct_change_best,
    case when s.outcome_status = 'assessed' then
        {{ dbt.datediff('s.first_dose_date', 's.first_response_date', 'day') }}
    end as days_to_response,
    case when s.scores_post_dose > 0 then
        {{ dbt.datediff('s.first_dose_date', 's.first_remission_date', 'day') }}
    end as days_to_remission,
    case when s.outcome_status = 'assessed' and s.first_response_at is not null then
        {{ dbt.datediff('s.first_response_date', 'coalesce(f.durability_end_date, s.latest_date)', 'day') }}
    end as durability_days,
    s.baseline_score is not null as has_baseline,
    case when s.outcome_status = 'assessed' then s.first_response_at is not null end as is_responder,
    case when s.scores_post_dose > 0 then s.first_remission_at is not null end as is_remitter,
    case when s.outcome_status = 'assessed' and s.first_response_at is not null then f.durability_end_at is null end as is_censored,
    case when s.outcome_status = 'assessed' then s.relapse_at is not null end as has_relapse,
    s.baseline_at,
    s.latest_at,
    s.first_dose_at,
    s.first_response_at,
    s.first_remission_at,
    case when s.outcome_status = 'assessed' then
        coalesce(f.durability_end_at, case when s.first_response_at is not null then s.latest_at end)
    end as durability_end_at,
    case when s.outcome_status = 'assessed' then s.relapse_at end as relapse_at
from classified as s
left join first_non_response_after as f
    on f.episode_key = s.episode_key
    and f.instrument = s.instrument
