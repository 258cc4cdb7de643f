{#- The clinic's local day (ours). Timestamps stay UTC everywhere; a *_date column and every daily
    or weekly grain is the date of the timestamp on the clinic's wall clock. The clinic's time
    zone comes from int_clinic_time_zones (FHIR timezone extension, else the per-clinic setting,
    else var default_time_zone, else KAP_TIMEZONE, else UTC). Use as:
        left join {{ '{{' }} ref('int_clinic_time_zones') {{ '}}' }} as tz on tz.clinic_id = x.clinic_id
        ... {{ '{{' }} local_date('x.start_at', 'tz.time_zone') {{ '}}' }} as start_date
    A row without a clinic (or a clinic without a zone) falls back to var default_time_zone. -#}
{% macro default_time_zone() -%}
    {%- set zone = var('default_time_zone', none) or env_var('KAP_TIMEZONE', '') | trim or 'UTC' -%}
    '{{ zone | replace("'", "") }}'
{%- endmacro %}

{#- Per-clinic time zones: var clinic_time_zones (a mapping), else KAP_CLINIC_TIMEZONES
    ('clinic-a=America/New_York,clinic-b=Europe/London'). -#}
{% macro clinic_time_zone_settings() -%}
    {%- set configured = var('clinic_time_zones', none) -%}
    {%- if configured -%}{{ return(configured) }}{%- endif -%}
    {%- set zones = {} -%}
    {%- for part in (env_var('KAP_CLINIC_TIMEZONES', '') | replace(';', ',')).split(',') if '=' in part -%}
        {%- set kv = part.split('=', 1) -%}
        {%- if kv[0] | trim and kv[1] | trim -%}{%- do zones.update({kv[0] | trim: kv[1] | trim}) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(zones) }}
{%- endmacro %}

{% macro local_date(timestamp_expr, time_zone_expr='null') -%}
    {{ return(adapter.dispatch('local_date', 'kap')(timestamp_expr, time_zone_expr)) }}
{%- endmacro %}
{% macro duckdb__local_date(timestamp_expr, time_zone_expr) -%}
    cast(timezone(coalesce({{ time_zone_expr }}, {{ default_time_zone() }}), timezone('UTC', cast({{ timestamp_expr }} as timestamp))) as date)
{%- endmacro %}
{% macro spark__local_date(timestamp_expr, time_zone_expr) -%}
    cast(from_utc_timestamp({{ timestamp_expr }}, coalesce({{ time_zone_expr }}, {{ default_time_zone() }})) as date)
{%- endmacro %}

{#- The names of time zones this engine knows (an unknown name must not fail the build). -#}
{% macro known_time_zones() -%}
    {{ return(adapter.dispatch('known_time_zones', 'kap')()) }}
{%- endmacro %}
{% macro duckdb__known_time_zones() -%}
    (select name from pg_timezone_names())
{%- endmacro %}
{#- Spark has no catalogue of zones: the IANA names (pytz) Java's zone database also knows. -#}
{% macro spark__known_time_zones() -%}
    ({%- for zone in modules.pytz.all_timezones if '/' in zone or zone == 'UTC' -%}
    '{{ zone }}'{% if not loop.last %}, {% endif %}
    {%- endfor -%})
{%- endmacro %}
