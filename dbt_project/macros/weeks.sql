{#- The week a date falls in, as its Monday: the week of the weekly marts. Pass a local date
    (macro local_date, or a *_date column, which are the clinic's local day) so the week is the
    clinic's local week. -#}
{% macro kap_week_start(date_expr) -%}
    cast({{ dbt.date_trunc('week', date_expr) }} as date)
{%- endmacro %}
