{#- Typed access to fields of the event payload (JSON). Dispatched per engine (DESIGN.md section 3):
    duckdb__ on the warehouse, spark__ on the lake, where the payload arrives as a JSON string.
    Values that do not convert become null (ingest has validated them already). -#}

{% macro json_text(column, field) -%}
    {{ return(adapter.dispatch('json_text', 'kap')(column, field)) }}
{%- endmacro %}
{% macro duckdb__json_text(column, field) -%}
    nullif(json_extract_string({{ column }}, '$.{{ field }}'), '')
{%- endmacro %}
{% macro spark__json_text(column, field) -%}
    nullif(get_json_object({{ column }}, '$.{{ field }}'), '')
{%- endmacro %}

{% macro json_number(column, field) -%}
    try_cast({{ json_text(column, field) }} as double)
{%- endmacro %}

{% macro json_integer(column, field) -%}
    cast(round(try_cast({{ json_text(column, field) }} as double)) as integer)
{%- endmacro %}

{% macro json_boolean(column, field) -%}
    case lower({{ json_text(column, field) }})
        when 'true' then true when '1' then true when 'yes' then true
        when 'false' then false when '0' then false when 'no' then false
    end
{%- endmacro %}

{#- Timestamps are stored in UTC; an explicit offset, if any, is honoured. -#}
{% macro json_timestamp(column, field) -%}
    {{ return(adapter.dispatch('json_timestamp', 'kap')(column, field)) }}
{%- endmacro %}
{% macro duckdb__json_timestamp(column, field) -%}
    cast(timezone('UTC', try_cast({{ json_text(column, field) }} as timestamptz)) as timestamp)
{%- endmacro %}
{#- Spark: parsed as an instant (offset honoured, else the UTC session zone), kept as the UTC wall
    clock without zone, as DuckDB's TIMESTAMP. -#}
{% macro spark__json_timestamp(column, field) -%}
    cast(try_cast({{ json_text(column, field) }} as timestamp_ltz) as timestamp_ntz)
{%- endmacro %}

{% macro json_date(column, field) -%}
    try_cast(left({{ json_text(column, field) }}, 10) as date)
{%- endmacro %}

{#- A JSON list of strings, flattened to 'a,b,c' (portable string, no array type in marts). -#}
{% macro json_string_list(column, field) -%}
    {{ return(adapter.dispatch('json_string_list', 'kap')(column, field)) }}
{%- endmacro %}
{% macro duckdb__json_string_list(column, field) -%}
    nullif(array_to_string(list_sort(cast(json_extract({{ column }}, '$.{{ field }}') as varchar[])), ','), '')
{%- endmacro %}
{% macro spark__json_string_list(column, field) -%}
    nullif(array_join(array_sort(from_json(get_json_object({{ column }}, '$.{{ field }}'), 'array<string>')), ','), '')
{%- endmacro %}

{#- A comma-separated tag list without its adverse-event tags (ae_*); null when nothing is left. -#}
{% macro drop_adverse_event_tags(tags) -%}
    {{ return(adapter.dispatch('drop_adverse_event_tags', 'kap')(tags)) }}
{%- endmacro %}
{% macro duckdb__drop_adverse_event_tags(tags) -%}
    nullif(regexp_replace(regexp_replace({{ tags }}, '(^|,)ae_[a-z_]+', '', 'g'), '^,', ''), '')
{%- endmacro %}
{#- Spark's regexp_replace replaces every match (no 'g' flag). -#}
{% macro spark__drop_adverse_event_tags(tags) -%}
    nullif(regexp_replace(regexp_replace({{ tags }}, '(^|,)ae_[a-z_]+', ''), '^,', ''), '')
{%- endmacro %}
