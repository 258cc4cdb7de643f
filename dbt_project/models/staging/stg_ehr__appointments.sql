{#- Grain: one row per appointment (its current version). Status comes from the payload as sent;
    the event type (booked/arrived/fulfilled/cancelled/noshow) is kept as status_group.
    is_kap_session (ours): a KAP session type (consult, preparation, dosing, integration,
    psychotherapy, discharge); an appointment of any other kind is not KAP care. -#}
select
    {{ source_key('Appointment', json_text('payload', 'appointment_id')) }} as appointment_id,
    {{ kap_survivor_key('patient_key') }} as patient_key,
    patient_key as record_patient_key,
    {{ json_text('payload', 'clinic_id') }} as clinic_id,
    {{ json_text('payload', 'practitioner_id') }} as practitioner_id,
    {{ json_text('payload', 'session_type') }} as session_type,
    coalesce({{ json_text('payload', 'session_type') }}, 'other') <> 'other' as is_kap_session,
    lower({{ json_text('payload', 'status') }}) as appointment_status,
    replace(event_type, 'appointment_', '') as status_group,
    {{ json_text('payload', 'cancel_reason') }} as cancel_reason,
    coalesce({{ json_timestamp('payload', 'start_at') }}, occurred_at) as start_at,
    {{ json_timestamp('payload', 'end_at') }} as end_at,
    {{ json_timestamp('payload', 'cancelled_at') }} as cancelled_at,
    recorded_at
from {{ ref('stg_raw__current_events') }}
where event_type in ('appointment_booked', 'appointment_arrived', 'appointment_fulfilled',
                     'appointment_cancelled', 'appointment_noshow')
