{#- `expr` starts with the literal text `prefix` (an underscore in it is a plain character).
    DuckDB: LIKE with an escaped wildcard; Spark reads a backslash in a string literal as an
    escape of its own, so it uses startswith. -#}
{% macro kap_starts_with(expr, prefix) -%}
    {{ return(adapter.dispatch('kap_starts_with', 'kap')(expr, prefix)) }}
{%- endmacro %}
{% macro duckdb__kap_starts_with(expr, prefix) -%}
    {{ expr }} like '{{ prefix | replace('_', '\\_') | replace('%', '\\%') }}%' escape '\'
{%- endmacro %}
{% macro spark__kap_starts_with(expr, prefix) -%}
    startswith({{ expr }}, '{{ prefix }}')
{%- endmacro %}
