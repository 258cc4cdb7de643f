{#- Schemas are exactly the layer names (staging, intermediate, marts), not `main_staging`:
    the published analytics database and the DAG refer to `marts.<table>`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
