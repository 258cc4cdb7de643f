{#- Grain: one row per dosing session (dose_key). THE one-dose-one-row rule (ours):
    an EHR MedicationAdministration (ketamine/esketamine) and a dosing-log row are the same
    session when they share patient, clinic day (UTC date of start_at) and route; if a patient has
    several sessions of one route on one day, they pair in start order. The dosing log wins for the
    dose and the vitals/monitoring details; the EHR fills fields the log lacks (field by field),
    including BP/SpO2/heart rate from the EHR vital-signs Observations of the administration's
    encounter. Unpaired rows from either source are sessions of their own. -#}
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
        cast(ma.start_at as date) as dose_date,
        row_number() over (
            partition by ma.patient_key, cast(ma.start_at as date), route
            order by ma.start_at, administration_id
        ) as day_slot
    from {{ ref('stg_ehr__medication_administrations') }} as ma
    left join {{ ref('stg_ehr__encounters') }} as enc
        on enc.encounter_id = ma.encounter_id
    where ma.drug in ('ketamine', 'esketamine')
      and ma.patient_key is not null
),

dosing_log as (
    select
        *,
        cast(start_at as date) as dose_date,
        row_number() over (
            partition by patient_key, cast(start_at as date), route
            order by start_at, dosing_id
        ) as day_slot
    from {{ ref('stg_dosing__doses') }}
    where patient_key is not null
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
        e.drug as ehr_drug,
        l.dose_mg as log_dose_mg,
        e.dose_mg as ehr_dose_mg,
        l.start_at as log_start_at,
        e.start_at as ehr_start_at,
        l.end_at as log_end_at,
        e.end_at as ehr_end_at,
        l.dose_mg_per_kg,
        l.weight_kg,
        l.monitoring_end_at,
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
    full outer join ehr as e
        on l.patient_key = e.patient_key
        and l.dose_date = e.dose_date
        and l.route = e.route
        and l.day_slot = e.day_slot
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
