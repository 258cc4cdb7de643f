{#- The one rule that places a dated activity in a patient episode (ours, documented on
    int_patient_episodes): the episode whose window [window_start_at, window_end_at) holds the
    activity's time. Windows of one patient tile the whole time line (the first starts at
    1900-01-01, each ends where the next starts), so every activity of a patient with an episode
    lands in exactly one episode. Use as: left join <episodes> as ep on {{ '{{' }} episode_window_join(...) {{ '}}' }} -#}
{% macro episode_window_join(episodes_alias, patient_key_expr, time_expr) -%}
    {{ episodes_alias }}.patient_key = {{ patient_key_expr }}
    and {{ time_expr }} >= {{ episodes_alias }}.window_start_at
    and {{ time_expr }} < {{ episodes_alias }}.window_end_at
{%- endmacro %}

{#- Induction rule per route (DOMAIN.md section 4, ours): the number of dosing sessions that
    completes induction, and the window (days from the first dose, day 0 included) they must fall
    in; null window = no time limit. -#}
{% macro induction_target_doses(route_expr) -%}
    case {{ route_expr }} when 'IV' then 6 when 'IN' then 8 else 3 end
{%- endmacro %}
{% macro induction_window_days(route_expr) -%}
    case {{ route_expr }} when 'IV' then 21 when 'IN' then 28 end
{%- endmacro %}
