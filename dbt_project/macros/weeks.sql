{#- The week a date falls in, as its Monday: the week of the weekly marts. The same expression as
    adherence_weekly's; the staff marts call it here so the week definition changes in one place
    (for example to the clinic's local week). -#}
{% macro kap_week_start(date_expr) -%}
    cast({{ dbt.date_trunc('week', date_expr) }} as date)
{%- endmacro %}
