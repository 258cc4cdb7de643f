{#- Grain: one row per ServiceRequest (current version). is_kap_referral (ours): coded SNOMED
    3457005 (patient referral), the code the KAP service's referrals carry (docs/inputs.md), or
    sent without a SNOMED code; other SNOMED-coded orders an EHR exports (labs, imaging, other
    services) stay in the log but open no episode. -#}
select
    {{ source_key('ServiceRequest', json_text('payload', 'referral_id')) }} as referral_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    {{ json_text('payload', 'clinic_id') }} as clinic_id,
    {{ json_text('payload', 'status') }} as referral_status,
    {{ json_text('payload', 'code') }} as referral_code,
    coalesce({{ json_boolean('payload', 'is_self_referral') }}, false) as is_self_referral,
    coalesce({{ json_text('payload', 'code') }}, '3457005') = '3457005' as is_kap_referral,
    coalesce({{ json_timestamp('payload', 'authored_at') }}, occurred_at) as referred_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type = 'referral_received'
