{#- Aggregates dbt-core has no cross-database macro for. Dispatched (DESIGN.md section 3): the
    default is ANSI SQL (ordered-set aggregate), which DuckDB, Postgres and Spark >= 3.3 accept;
    an adapter without it (Trino: approx_percentile) supplies its own `<adapter>__kap_median`. -#}
{% macro kap_median(expr) -%}
    {{ return(adapter.dispatch('kap_median', 'kap')(expr)) }}
{%- endmacro %}
{% macro default__kap_median(expr) -%}
    percentile_cont(0.5) within group (order by {{ expr }})
{%- endmacro %}

{#- Small-cell suppression (DOMAIN.md section 6, OHDSI Achilles default): a count of 5 or fewer
    people is not shown. `kap_small_cell_max()` is that 5; `kap_suppress(value, n)` shows value
    only when the population n it is computed on is larger. -#}
{% macro kap_small_cell_max() -%}
    {{ return(var('small_cell_max', 5)) }}
{%- endmacro %}
{% macro kap_suppress(value_expr, n_expr) -%}
    case when {{ n_expr }} > {{ kap_small_cell_max() }} then {{ value_expr }} end
{%- endmacro %}
