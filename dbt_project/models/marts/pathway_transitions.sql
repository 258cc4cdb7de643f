{#- Grain: one row per phase an episode entered (episode_key, to_phase), ordered in time; the
    phases and their dates are those of care_pathways (int_episode_pathway); transition_date is
    the clinic's local date (macro local_date). -#}
with milestones as (
    {%- set phases = [
        ('referral', 1, 'coalesce(referred_at, episode_start_at)'),
        ('screening', 2, 'screening_at'),
        ('screened_out', 3, "case when screening_result = 'ineligible' and first_dose_at is null then screened_out_at end"),
        ('preparation', 4, 'first_preparation_at'),
        ('induction', 5, 'first_dose_at'),
        ('maintenance', 6, 'maintenance_started_at'),
        ('dropped_out', 7, 'dropped_out_at'),
        ('closed', 8, 'closed_at'),
        ('discharged', 9, 'discharged_at'),
    ] %}
    {%- for phase, ordinal, expr in phases %}
    select
        episode_key,
        patient_key,
        clinic_id,
        '{{ phase }}' as to_phase,
        {{ ordinal }} as phase_order,
        {{ expr }} as entered_at
    from {{ ref('int_episode_pathway') }}
    where {{ expr }} is not null
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

ordered as (
    select
        milestones.*,
        row_number() over (partition by episode_key order by entered_at, phase_order) as transition_number,
        lag(to_phase) over (partition by episode_key order by entered_at, phase_order) as from_phase,
        lag(entered_at) over (partition by episode_key order by entered_at, phase_order) as from_phase_entered_at
    from milestones
)

select
    episode_key || ':' || to_phase as transition_key,
    episode_key,
    patient_key,
    ordered.clinic_id,
    transition_number,
    from_phase,
    to_phase,
    {{ dbt.datediff('from_phase_entered_at', 'entered_at', 'day') }} as days_in_from_phase,
    {{ local_date('entered_at', 'tz.time_zone') }} as transition_date,
    entered_at
from ordered
left join {{ ref('int_clinic_time_zones') }} as tz on tz.clinic_id = ordered.clinic_id
