-- depends_on: {{ ref('stg_raw__touched_patients') }} (the patients a delta build recomputes)
-- depends_on: {{ ref('stg_ehr__patient_merges') }} (delta builds also recompute chart-merge partners)
-- depends_on: {{ source('raw', 'events') }}
{#- Grain: one row per dosing session (dose_key). THE one-dose-one-row rule (ours):
    an EHR MedicationAdministration (ketamine/esketamine) and a dosing-log row are the same
    session when they belong to the same patient and route and their start times lie within
    var dose_match_hours (12) of each other - the "same clinic day" intent, measured in hours
    rather than on the UTC date, so a late-evening session in a western time zone (which straddles
    UTC midnight in one source and not the other) still pairs. Matching is one-to-one, nearest
    first: a pair is made when each row is the other's nearest remaining candidate (ties: lower
    id); this runs in var dose_match_rounds (3) rounds over the rows still unpaired, which is
    the greedy nearest-first matching for any realistic number of same-route sessions within 12 h.
    The dosing log wins for the dose and the vitals/monitoring details; the EHR fills fields the
    log lacks (field by field), including BP/SpO2/heart rate from the EHR vital-signs
    Observations of the administration's encounter. setting (office | home |
    telehealth_supervised) comes from the dosing log; monitoring_end_at is the log's, else the end
    of the dosing Encounter (discharge; ours); without one the session is an office session (ours). Unpaired rows from either source are
    sessions of their own. dose_date is the clinic's local date of the session's start (log first;
    macro local_date, int_clinic_time_zones).
    Incremental per patient (macros/incremental.sql): every row is one patient's, computed from
    that patient's records only, so a nightly build recomputes just the touched patients. -#}
{{ kap_incremental_config('patient') }}
{%- set match_minutes = var('dose_match_hours', 12) * 60 %}
{%- set rounds = var('dose_match_rounds', 3) %}
with ehr as (
    select
        administration_id,
        ma.patient_key,
        ma.encounter_id,
        -- MedicationAdministration rarely names the clinic: take the dosing encounter's
        coalesce(ma.clinic_id, enc.clinic_id) as clinic_id,
        drug,
        route,
        dose_mg,
        ma.start_at,
        ma.end_at,
        enc.end_at as encounter_end_at,
        {{ local_date('ma.start_at', 'tz.time_zone') }} as dose_date
    from {{ ref('stg_ehr__medication_administrations') }} as ma
    left join {{ ref('stg_ehr__encounters') }} as enc
        on enc.encounter_id = ma.encounter_id
    -- a dose without a clinic is dated on its patient's clinic's day
    left join {{ ref('stg_ehr__patients') }} as pt
        on pt.patient_key = ma.patient_key
    left join {{ ref('int_clinic_time_zones') }} as tz
        on tz.clinic_id = coalesce(ma.clinic_id, enc.clinic_id, pt.clinic_id)
    where ma.drug in ('ketamine', 'esketamine')
      and ma.patient_key is not null
      and {{ kap_incremental_filter('patient', 'ma', 'record_patient_key') }}
),

dosing_log as (
    select
        d.*,
        {{ local_date('d.start_at', 'tz.time_zone') }} as dose_date
    from {{ ref('stg_dosing__doses') }} as d
    left join {{ ref('stg_ehr__patients') }} as pt
        on pt.patient_key = d.patient_key
    left join {{ ref('int_clinic_time_zones') }} as tz
        on tz.clinic_id = coalesce(d.clinic_id, pt.clinic_id)
    where d.patient_key is not null
      and {{ kap_incremental_filter('patient', 'd', 'record_patient_key') }}
),

candidates as (
    -- every same-patient, same-route pair whose starts are at most dose_match_hours apart
    select
        l.dosing_id,
        e.administration_id,
        abs({{ dbt.datediff('l.start_at', 'e.start_at', 'minute') }}) as minutes_apart
    from dosing_log as l
    inner join ehr as e
        on e.patient_key = l.patient_key
        and e.route = l.route
        and e.start_at >= {{ dbt.dateadd('minute', -match_minutes, 'l.start_at') }}
        and e.start_at <= {{ dbt.dateadd('minute', match_minutes, 'l.start_at') }}
),
{% for n in range(1, rounds + 1) %}
matched_{{ n }} as (
    -- round {{ n }}: mutual nearest among the candidates still unpaired
    select dosing_id, administration_id
    from (
        select
            c.dosing_id,
            c.administration_id,
            row_number() over (partition by c.dosing_id order by c.minutes_apart, c.administration_id) as nearest_for_log,
            row_number() over (partition by c.administration_id order by c.minutes_apart, c.dosing_id) as nearest_for_ehr
        from candidates as c
        {%- for m in range(1, n) %}
        left join matched_{{ m }} as log_{{ m }} on log_{{ m }}.dosing_id = c.dosing_id
        left join matched_{{ m }} as ehr_{{ m }} on ehr_{{ m }}.administration_id = c.administration_id
        {%- endfor %}
        where 1 = 1
        {%- for m in range(1, n) %}
          and log_{{ m }}.dosing_id is null
          and ehr_{{ m }}.administration_id is null
        {%- endfor %}
    ) as ranked
    where nearest_for_log = 1 and nearest_for_ehr = 1
),
{% endfor %}
matches as (
    {%- for n in range(1, rounds + 1) %}
    select dosing_id, administration_id from matched_{{ n }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

paired as (
    select
        coalesce(l.patient_key, e.patient_key) as patient_key,
        coalesce(l.dose_date, e.dose_date) as dose_date,
        coalesce(l.route, e.route) as route,
        l.dosing_id,
        e.administration_id,
        e.encounter_id,
        l.clinic_id as log_clinic_id,
        e.clinic_id as ehr_clinic_id,
        l.drug as log_drug,
        l.setting as log_setting,
        e.drug as ehr_drug,
        l.dose_mg as log_dose_mg,
        e.dose_mg as ehr_dose_mg,
        l.start_at as log_start_at,
        e.start_at as ehr_start_at,
        l.end_at as log_end_at,
        e.end_at as ehr_end_at,
        l.dose_mg_per_kg,
        l.weight_kg,
        -- (ours) without the log's monitoring end, the dosing encounter's end (discharge) stands in
        coalesce(l.monitoring_end_at, e.encounter_end_at) as monitoring_end_at,
        l.bp_pre_systolic, l.bp_pre_diastolic,
        l.bp_40min_systolic, l.bp_40min_diastolic,
        l.bp_discharge_systolic, l.bp_discharge_diastolic,
        l.heart_rate_pre,
        l.spo2_min,
        l.cadss_total,
        l.moaas_min,
        l.is_booster,
        l.clinician_id,
        l.rems_form_submitted_on
    from dosing_log as l
    left join matches as m
        on m.dosing_id = l.dosing_id
    full outer join ehr as e
        on e.administration_id = m.administration_id
),

bp_readings as (
    select
        p.administration_id,
        v.systolic,
        v.diastolic,
        abs({{ dbt.datediff(dbt.dateadd('minute', 40, 'p.ehr_start_at'), 'v.measured_at', 'minute') }}) as minutes_from_40min,
        v.measured_at,
        row_number() over (partition by p.administration_id order by v.measured_at, v.observation_id) as n_from_first,
        row_number() over (partition by p.administration_id order by v.measured_at desc, v.observation_id desc) as n_from_last
    from paired as p
    inner join {{ ref('stg_ehr__vitals') }} as v
        on v.encounter_id = p.encounter_id
        and v.patient_key = p.patient_key
    where p.administration_id is not null
      and v.measure = 'blood_pressure'
      and {{ kap_incremental_filter('patient', 'v', 'record_patient_key') }}
),

bp_middle as (
    -- readings between the first and the last: the one nearest start + 40 min is the 40-min reading
    select
        administration_id,
        systolic,
        diastolic,
        row_number() over (partition by administration_id order by minutes_from_40min, measured_at) as nearness
    from bp_readings
    where n_from_first > 1 and n_from_last > 1
),

ehr_vitals as (
    -- BP from the encounter's Observations: first = pre, last = discharge (two or more readings),
    -- middle reading nearest start + 40 min = the 40-minute reading (three or more readings).
    select
        b.administration_id,
        max(case when b.n_from_first = 1 then b.systolic end) as pre_systolic,
        max(case when b.n_from_first = 1 then b.diastolic end) as pre_diastolic,
        max(case when b.n_from_last = 1 and b.n_from_first > 1 then b.systolic end) as discharge_systolic,
        max(case when b.n_from_last = 1 and b.n_from_first > 1 then b.diastolic end) as discharge_diastolic,
        max(m.systolic) as min40_systolic,
        max(m.diastolic) as min40_diastolic
    from bp_readings as b
    left join bp_middle as m
        on m.administration_id = b.administration_id
        and m.nearness = 1
    group by b.administration_id
),

ehr_other_vitals as (
    select
        p.administration_id,
        min(case when v.measure = 'spo2' then v.value end) as spo2_min,
        min(case when v.measure = 'heart_rate' and v.measured_at <= p.ehr_start_at then v.value end) as heart_rate_pre
    from paired as p
    inner join {{ ref('stg_ehr__vitals') }} as v
        on v.encounter_id = p.encounter_id
        and v.patient_key = p.patient_key
    where p.administration_id is not null
      and v.measure in ('spo2', 'heart_rate')
      and {{ kap_incremental_filter('patient', 'v', 'record_patient_key') }}
    group by p.administration_id
)

select
    case when p.dosing_id is not null then 'dl-' || p.dosing_id
         else 'ehr-' || p.administration_id end as dose_key,
    p.patient_key,
    coalesce(p.log_clinic_id, p.ehr_clinic_id) as clinic_id,
    p.dosing_id,
    p.administration_id,
    p.encounter_id,
    p.clinician_id,
    case when p.dosing_id is not null and p.administration_id is not null then 'both'
         when p.dosing_id is not null then 'dosing_log_only'
         else 'ehr_only' end as source_match,
    coalesce(p.log_drug, p.ehr_drug) as drug,
    p.route,
    -- (ours) the dosing log's setting; a session without one (older logs, EHR only) is an office session
    coalesce(p.log_setting, 'office') as setting,
    coalesce(p.log_dose_mg, p.ehr_dose_mg) as dose_mg,
    p.log_dose_mg,
    p.ehr_dose_mg,
    p.dose_mg_per_kg,
    p.weight_kg,
    coalesce(p.bp_pre_systolic, cast(ev.pre_systolic as integer)) as bp_pre_systolic,
    coalesce(p.bp_pre_diastolic, cast(ev.pre_diastolic as integer)) as bp_pre_diastolic,
    coalesce(p.bp_40min_systolic, cast(ev.min40_systolic as integer)) as bp_40min_systolic,
    coalesce(p.bp_40min_diastolic, cast(ev.min40_diastolic as integer)) as bp_40min_diastolic,
    coalesce(p.bp_discharge_systolic, cast(ev.discharge_systolic as integer)) as bp_discharge_systolic,
    coalesce(p.bp_discharge_diastolic, cast(ev.discharge_diastolic as integer)) as bp_discharge_diastolic,
    coalesce(p.heart_rate_pre, cast(eo.heart_rate_pre as integer)) as heart_rate_pre,
    coalesce(p.spo2_min, cast(eo.spo2_min as integer)) as spo2_min,
    p.cadss_total,
    p.moaas_min,
    coalesce(p.is_booster, false) as is_booster,
    (p.dosing_id is not null and p.administration_id is not null
        and (abs(p.log_dose_mg - p.ehr_dose_mg) > 0.5 or p.log_drug <> p.ehr_drug)) as has_source_conflict,
    p.dose_date,
    p.rems_form_submitted_on,
    coalesce(p.log_start_at, p.ehr_start_at) as start_at,
    coalesce(p.log_end_at, p.ehr_end_at) as end_at,
    p.monitoring_end_at
from paired as p
left join ehr_vitals as ev on ev.administration_id = p.administration_id
left join ehr_other_vitals as eo on eo.administration_id = p.administration_id
