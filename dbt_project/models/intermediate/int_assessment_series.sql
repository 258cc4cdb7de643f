-- depends_on: {{ ref('stg_raw__touched_patients') }} (the patients a delta build recomputes)
-- depends_on: {{ ref('stg_ehr__patient_merges') }} (delta builds also recompute chart-merge partners)
-- depends_on: {{ source('raw', 'events') }}
{#- Grain: one row per outcome score (observation_id) of PHQ-9, GAD-7 or PCL-5, placed in its
    episode and compared with the episode's baseline. Definitions (DOMAIN.md section 4):
    - baseline: the last score of the instrument on or before the first dose, at most 30 days
      before it (ours) - scored_at <= first_dose_at and first dose date - score date <= 30;
    - meets_response: a score after the first dose >= 50 % below baseline (baseline > 0);
    - meets_remission: a score after the first dose below 5 (PHQ-9, GAD-7; none for PCL-5);
    - is_relapse_score (ours): after the first response, a score at or above the relapse threshold
      (PHQ-9 >= 10 per DOMAIN; GAD-7 >= 10 and PCL-5 >= 33 are our extension), or the second of
      two consecutive post-response scores that no longer meet response.
    Days are counted between the clinic's local dates (scored_date, first_dose_date: macro local_date
    on the episode's clinic).
    Incremental per patient (macros/incremental.sql): every row is one patient's, computed from
    that patient's records only, so a nightly build recomputes just the touched patients. -#}
{{ kap_incremental_config('patient') }}
with scores as (
    select
        a.observation_id,
        a.patient_key,
        a.instrument,
        a.score,
        a.scored_at,
        {{ local_date('a.scored_at', 'tz.time_zone') }} as scored_date,
        ep.episode_key,
        dose.first_dose_at,
        {{ local_date('dose.first_dose_at', 'tz.time_zone') }} as first_dose_date
    from {{ ref('stg_ehr__assessments') }} as a
    inner join {{ ref('int_patient_episodes') }} as ep
        on {{ episode_window_join('ep', 'a.patient_key', 'a.scored_at') }}
    left join {{ ref('int_episode_dosing_summarised') }} as dose
        on dose.episode_key = ep.episode_key
    left join {{ ref('int_clinic_time_zones') }} as tz
        on tz.clinic_id = ep.clinic_id
    where a.instrument in ('phq9', 'gad7', 'pcl5')
      and a.score is not null
      and {{ kap_incremental_filter('patient', 'a', 'record_patient_key') }}
      and coalesce(a.observation_status, 'final') in ('final', 'amended', 'corrected')
),

baseline_candidates as (
    select
        observation_id,
        episode_key,
        instrument,
        row_number() over (
            partition by episode_key, instrument order by scored_at desc, observation_id desc
        ) as recency
    from scores
    where scored_at <= first_dose_at
      and {{ dbt.datediff('scored_date', 'first_dose_date', 'day') }} <= 30
),

with_baseline as (
    select
        s.*,
        b.score as baseline_score,
        b.scored_at as baseline_at,
        s.observation_id = b.observation_id as is_baseline,
        coalesce(s.scored_at > s.first_dose_at, false) as is_post_dose
    from scores as s
    left join baseline_candidates as bc
        on bc.episode_key = s.episode_key
        and bc.instrument = s.instrument
        and bc.recency = 1
    left join scores as b
        on b.observation_id = bc.observation_id
),

flagged as (
    select
        w.*,
        coalesce(w.is_post_dose and w.baseline_score > 0 and w.score <= 0.5 * w.baseline_score, false) as meets_response,
        coalesce(w.is_post_dose and w.instrument in ('phq9', 'gad7') and w.score < 5, false) as meets_remission,
        case when w.baseline_score > 0
             then round(100.0 * (w.score - w.baseline_score) / w.baseline_score, 1) end as pct_change_from_baseline
    from with_baseline as w
),

first_response as (
    select episode_key, instrument, min(scored_at) as first_response_at
    from flagged
    where meets_response
    group by episode_key, instrument
),

after_response as (
    select
        f.*,
        r.first_response_at,
        lag(f.meets_response) over (
            partition by f.episode_key, f.instrument order by f.scored_at, f.observation_id
        ) as previous_meets_response,
        lag(f.scored_at) over (
            partition by f.episode_key, f.instrument order by f.scored_at, f.observation_id
        ) as previous_scored_at
    from flagged as f
    left join first_response as r
        on r.episode_key = f.episode_key
        and r.instrument = f.instrument
)

select
    observation_id,
    episode_key,
    patient_key,
    instrument,
    score,
    baseline_score,
    pct_change_from_baseline,
    {{ dbt.datediff('first_dose_date', 'scored_date', 'day') }} as days_from_first_dose,
    coalesce(is_baseline, false) as is_baseline,
    is_post_dose,
    meets_response,
    meets_remission,
    coalesce(
        scored_at > first_response_at
        and (
            score >= case instrument when 'phq9' then 10 when 'gad7' then 10 when 'pcl5' then 33 end
            or (not meets_response and previous_meets_response = false
                and previous_scored_at > first_response_at)
        ),
        false
    ) as is_relapse_score,
    scored_date,
    first_dose_date,
    scored_at,
    first_dose_at,
    first_response_at,
    baseline_at
from after_response
