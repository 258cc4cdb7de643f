{#- The event log's sources on Spark: one view per raw table over its Parquet lake folder
    (kap/lake.py: hive-partitioned by source and ingest date), typed as in warehouse.duckdb, so
    source('raw', ...) names the same columns on both engines. A table without parts yet is an
    empty view of the same columns. kap's Spark build runs this first:
        dbt run-operation kap_create_lake_views --target spark --args '{root: <lake>, tables: [...]}'
    root: the lake folder (default env KAP_LAKE); tables: the raw tables that have parts (default
    all); locations: optional {schema: folder} for the databases the build writes (each dropped and
    created again there, so every Spark build starts clean: a full rebuild). -#}
{% macro kap_lake_columns() -%}
    {{ return({
        'events': [('event_id', 'string'), ('event_type', 'string'), ('patient_key', 'string'),
                   ('occurred_at', 'timestamp_ntz'), ('recorded_at', 'timestamp_ntz'),
                   ('ingested_at', 'timestamp_ntz'), ('source', 'string'), ('file_id', 'string'),
                   ('source_record_id', 'string'), ('payload', 'string')],
        'quarantine': [('file_id', 'string'), ('line_number', 'bigint'), ('reason_code', 'string'),
                       ('detail', 'string'), ('raw_record', 'string'), ('quarantined_at', 'timestamp_ntz'),
                       ('source', 'string')],
        'ingest_files': [('file_id', 'string'), ('path', 'string'), ('sha256', 'string'), ('source', 'string'),
                         ('status', 'string'), ('reject_reason', 'string'), ('size_bytes', 'bigint'),
                         ('records_read', 'bigint'), ('records_accepted', 'bigint'),
                         ('records_quarantined', 'bigint'), ('records_duplicate', 'bigint'),
                         ('records_ignored', 'bigint'), ('events_added', 'bigint'),
                         ('ingested_at', 'timestamp_ntz'), ('run_id', 'string')],
        'knowledge_cutoffs': [('run_id', 'string'), ('cutoff_at', 'timestamp_ntz'), ('basis', 'string'),
                              ('manifest_path', 'string'), ('basis_run_id', 'string'),
                              ('run_started_at', 'timestamp_ntz'), ('recorded_at', 'timestamp_ntz')],
    }) }}
{%- endmacro %}

{% macro kap_create_lake_views(root=none, tables=none, locations=none) -%}
    {{ return(adapter.dispatch('kap_create_lake_views', 'kap')(root, tables, locations)) }}
{%- endmacro %}

{% macro default__kap_create_lake_views(root, tables, locations) -%}
    {{ exceptions.raise_compiler_error("the lake views are for the Spark target; " ~ target.type ~ " reads raw.* in the warehouse") }}
{%- endmacro %}

{% macro spark__kap_create_lake_views(root, tables, locations) -%}
    {%- set root = (root or env_var('KAP_LAKE', '')) | string -%}
    {%- if not root -%}
        {{ exceptions.raise_compiler_error("kap_create_lake_views: give root (the lake folder) or set KAP_LAKE") }}
    {%- endif -%}
    {%- set columns = kap_lake_columns() -%}
    {%- set present = columns.keys() | list if tables is none else tables -%}
    {%- for schema, folder in (locations or {}).items() -%}
        {%- do run_query("drop database if exists " ~ schema ~ " cascade") -%}
        {%- do run_query("create database " ~ schema ~ " location '" ~ folder ~ "'") -%}
    {%- endfor -%}
    {%- do run_query("create database if not exists raw") -%}
    {%- for table, cols in columns.items() -%}
        {%- if table in present -%}
            {%- set body -%}
            select {% for name, type in cols %}cast({{ name }} as {{ type }}) as {{ name }}{% if not loop.last %}, {% endif %}{% endfor %}
            from parquet.`{{ root.rstrip('/') }}/{{ table }}`
            {%- endset -%}
        {%- else -%}
            {%- set body -%}
            select {% for name, type in cols %}cast(null as {{ type }}) as {{ name }}{% if not loop.last %}, {% endif %}{% endfor %}
            where 1 = 0
            {%- endset -%}
        {%- endif -%}
        {%- do run_query("create or replace view raw." ~ table ~ " as " ~ body) -%}
        {{ log("raw." ~ table ~ ": " ~ ("lake " ~ root ~ "/" ~ table if table in present else "no parts yet, empty"), info=true) }}
    {%- endfor -%}
{%- endmacro %}
