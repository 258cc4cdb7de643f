{#- dbt's cross-database date and string macros, made to mean on Spark what they mean on DuckDB
    (found first: dbt_project.yml dispatch search order kap, dbt). dbt-spark's own versions raise
    on NULL arguments (assert_not_null), count elapsed rather than crossed minutes, and ignore
    listagg's order; these do neither. DuckDB keeps dbt-duckdb's macros. -#}

{#- Boundaries crossed, as DuckDB's date_diff: days between the dates; hours or minutes between
    the timestamps truncated to the unit. NULL in, NULL out. -#}
{% macro spark__datediff(first_date, second_date, datepart) -%}
    {%- if datepart == 'day' -%}
    datediff({{ second_date }}, {{ first_date }})
    {%- elif datepart in ('hour', 'minute', 'second') -%}
    timestampdiff({{ datepart | upper }}, date_trunc('{{ datepart | upper }}', {{ first_date }}), date_trunc('{{ datepart | upper }}', {{ second_date }}))
    {%- else -%}
    {{ exceptions.raise_compiler_error("spark__datediff: datepart " ~ datepart ~ " is not used by this project") }}
    {%- endif -%}
{%- endmacro %}

{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    timestampadd({{ datepart | upper }}, {{ interval }}, {{ from_date_or_timestamp }})
{%- endmacro %}

{% macro spark__listagg(measure, delimiter_text, order_by_clause, limit_num) -%}
    {%- if limit_num -%}
    {{ exceptions.raise_compiler_error("spark__listagg: limit_num is not used by this project") }}
    {%- endif -%}
    listagg({{ measure }}, {{ delimiter_text }}){% if order_by_clause %} within group ({{ order_by_clause }}){% endif %}
{%- endmacro %}

{#- Seeds on Spark: dbt-spark binds an empty CSV cell as the text 'None'; here it is NULL, as on
    DuckDB (monitoring_protocols leaves observation_from empty where no observation is needed). -#}
{% macro spark__load_csv_rows(model, agate_table) -%}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set sql -%}
    insert into {{ this.render() }} values
    {% for row in agate_table.rows -%}
        ({%- for col_name in agate_table.column_names -%}
            {%- set type = column_override.get(col_name, adapter.convert_type(agate_table, loop.index0)) -%}
            {%- set value = row[loop.index0] -%}
            cast({% if value is none %}null{% else %}'{{ value | string | replace("\\", "\\\\") | replace("'", "\\'") }}'{% endif %} as {{ type }})
            {%- if not loop.last %}, {% endif -%}
        {%- endfor -%}){% if not loop.last %},{% endif %}
    {% endfor %}
    {%- endset -%}
    {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
    {{ return(sql) }}
{%- endmacro %}
