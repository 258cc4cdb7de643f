{#- The knowledge-time cut-off (var `as_of`). Returns a SQL timestamp literal, or none when every
    recorded event is wanted. Validated here so a typo fails the run instead of silently matching
    nothing. -#}
{% macro kap_as_of() -%}
    {%- set raw = var('as_of', none) -%}
    {%- if raw is none or (raw | string | trim) in ('', 'None', 'null', 'none') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = raw | string | trim | replace('T', ' ') | replace('Z', '') -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?$', text) -%}
        {{ exceptions.raise_compiler_error("var as_of must look like 2025-06-01T00:00:00 (UTC), got: " ~ raw) }}
    {%- endif -%}
    {{ return("cast('" ~ text ~ "' as " ~ dbt.type_timestamp() ~ ")") }}
{%- endmacro %}


{#- "Now" for every as-of rule (dropout, open phases): the single row of stg_raw__knowledge_time,
    which is var as_of, or the latest recorded_at in the event log when as_of is not set.
    Never the wall clock: the same events and as_of give the same marts. -#}
{% macro kap_now() -%}
    (select as_of_at from {{ ref('stg_raw__knowledge_time') }})
{%- endmacro %}


{#- The patient key a record counts under (ours): the survivor's key when a documented chart merge
    (Patient.link, stg_ehr__patient_merges) known at the cut-off retired this key, else the key. -#}
{% macro kap_survivor_key(column) -%}
    coalesce((select m.survivor_patient_key from {{ ref('stg_ehr__patient_merges') }} as m
              where m.merged_patient_key = {{ column }}), {{ column }})
{%- endmacro %}
