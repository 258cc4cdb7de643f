{#- Grain: one row per EpisodeOfCare, current version. -#}
select
    {{ source_key('EpisodeOfCare', json_text('payload', 'episode_id')) }} as episode_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    {{ json_text('payload', 'clinic_id') }} as clinic_id,
    lower({{ json_text('payload', 'status') }}) as episode_status,
    event_type = 'episode_closed' as is_closed,
    coalesce({{ json_timestamp('payload', 'start_at') }}, occurred_at) as start_at,
    {{ json_timestamp('payload', 'end_at') }} as end_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type in ('episode_opened', 'episode_closed')
