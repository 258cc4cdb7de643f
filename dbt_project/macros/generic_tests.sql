{#- The few generic tests the project needs beyond dbt's built-ins (no hub packages offline). -#}

{#- Fails for every row where the SQL expression is not true (nulls pass: pair with not_null). -#}
{% test expression_is_true(model, expression, column_name=none) %}
{{- kap_changed_dependency(model) -}}
select *
from {{ model }}
where not ({{ expression }})
{% endtest %}

{#- Fails for every combination of the columns that occurs more than once. -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
select {{ combination_of_columns | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1
{% endtest %}

{#- Fails when the model has no rows. -#}
{% test not_empty(model) %}
select 1 as no_rows
where not exists (select 1 from {{ model }})
{% endtest %}
