select
    {{ json_text('payload', 'referral_id') }} as referral_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    {{ json_text('payload', 'clinic_id') }} as clinic_id,
    {{ json_text('payload', 'status') }} as referral_status,
    {{ json_text('payload', 'code') }} as referral_code,
    coalesce({{ json_boolean('payload', 'is_self_referral') }}, false) as is_self_referral,
    coalesce({{ json_timestamp('payload', 'authored_at') }}, occurred_at) as referred_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type = 'referral_received'
