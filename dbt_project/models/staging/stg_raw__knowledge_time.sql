{#- Grain: exactly one row. "Now" for the as-of rules (see macro kap_now). -#}
{%- set cutoff = kap_as_of() %}
select
    {% if cutoff is not none -%}
    {{ cutoff }}
    {%- else -%}
    coalesce(max(recorded_at), cast('1970-01-01' as {{ dbt.type_timestamp() }}))
    {%- endif %} as as_of_at,
    {{ 'true' if cutoff is not none else 'false' }} as is_explicit_as_of,
    count(*) as events_known
from {{ source('raw', 'events') }}
{%- if cutoff is not none %}
where recorded_at <= {{ cutoff }}
{%- endif %}
