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
      second of two consecutive non-responding scores. -#}
with series as (
    select * from {{ ref('int_assessment_series') }}
),

ranked as (
    select
        series.*,
        row_number() over (partition by episode_key, instrument order by scored_at desc, observation_id desc) as from_last
    from series
),

first_non_response_after as (
    select episode_key, instrument, min(scored_at) as durability_end_at
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
        max(first_dose_at) as first_dose_at,
        max(first_response_at) as first_response_at,
        min(case when meets_remission then scored_at end) as first_remission_at,
        min(case when is_relapse_score then scored_at end) as relapse_at
    from ranked
    group by episode_key, instrument
)

select
    s.episode_key || ':' || s.instrument as outcome_key,
    s.episode_key,
    s.patient_key,
    s.instrument,
    s.scores_total,
    s.scores_post_dose,
    s.baseline_score,
    s.latest_score,
    s.best_score,
    case when s.baseline_score > 0
         then round(100.0 * (s.latest_score - s.baseline_score) / s.baseline_score, 1) end as pct_change_latest,
    case when s.baseline_score > 0
         then round(100.0 * (s.best_score - s.baseline_score) / s.baseline_score, 1) end as pct_change_best,
    {{ dbt.datediff('cast(s.first_dose_at as date)', 'cast(s.first_response_at as date)', 'day') }} as days_to_response,
    {{ dbt.datediff('cast(s.first_dose_at as date)', 'cast(s.first_remission_at as date)', 'day') }} as days_to_remission,
    case when s.first_response_at is not null then
        {{ dbt.datediff('cast(s.first_response_at as date)', 'cast(coalesce(f.durability_end_at, s.latest_at) as date)', 'day') }}
    end as durability_days,
    s.baseline_score is not null as has_baseline,
    s.first_response_at is not null as is_responder,
    s.first_remission_at is not null as is_remitter,
    case when s.first_response_at is not null then f.durability_end_at is null end as is_censored,
    s.relapse_at is not null as has_relapse,
    s.baseline_at,
    s.latest_at,
    s.first_dose_at,
    s.first_response_at,
    s.first_remission_at,
    coalesce(f.durability_end_at, case when s.first_response_at is not null then s.latest_at end) as durability_end_at,
    s.relapse_at
from summary as s
left join first_non_response_after as f
    on f.episode_key = s.episode_key
    and f.instrument = s.instrument
