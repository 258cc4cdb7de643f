{#- Incremental builds that stay equal to a full rebuild (README: "Incremental models").

    Each incremental model keeps a row in staging.kap_incremental_state: a fingerprint of what it
    was built with (the checksums of the project's model files, the vars, as_of, the time-zone
    settings KAP_TIMEZONE / KAP_CLINIC_TIMEZONES; macro code is not in the
    dbt graph: after changing a macro, build once with --full-refresh) and the event log's
    max(ingested_at) at that build ("ingested_through"). A build is a DELTA only when
      - the table exists and --full-refresh is not given (dbt's is_incremental()),
      - var as_of is not set (an as-of replay is always a full rebuild), and
      - the stored fingerprint equals the current one (same code, same vars, and the previous
        build was not an as-of build) and a watermark is stored.
    Otherwise it is FULL: the pre-hook empties the table and the model inserts everything, which
    is exactly what --full-refresh produces.

    In a DELTA the "touched" entities are those with any event ingested after the watermark
    (ingested_at > ingested_through, ingest's load time, monotone across runs under the single
    writer lock): for `record` models the (source, source_record_id); for `patient` models every
    patient_key any version of a touched record carries (so a correction moving a record to
    another patient recomputes both). The pre-hook deletes the touched entities' rows and the model
    inserts them recomputed from the whole log (append): corrections replace, retractions remove.
    Use: {{ kap_incremental_config('patient') }} at the top of the model (on DuckDB exactly
        config(materialized='incremental', incremental_strategy='append',
               on_schema_change='sync_all_columns',
               pre_hook="{{ kap_incremental_prune('patient') }}",
               post_hook="{{ kap_incremental_mark() }}"))
    and `where {{ kap_incremental_filter('patient', 'alias') }}` where the model reads its input.

    On Spark the same models are tables, rebuilt in full on every build (no Delta Lake here:
    plain Parquet tables take no DELETE, and a hook is one statement): the filter is then `1 = 1`
    and the hooks are not set. Equal results, more work per night (docs/scaling.md). -#}

{% macro kap_incremental_config(kind) -%}
    {{ return(adapter.dispatch('kap_incremental_config', 'kap')(kind)) }}
{%- endmacro %}
{% macro duckdb__kap_incremental_config(kind) -%}
    {%- do config(materialized='incremental', incremental_strategy='append',
                  on_schema_change='sync_all_columns',
                  pre_hook="{{ kap_incremental_prune('" ~ kind ~ "') }}",
                  post_hook="{{ kap_incremental_mark() }}") -%}
{%- endmacro %}
{% macro spark__kap_incremental_config(kind) -%}
    {%- do config(materialized='table') -%}
{%- endmacro %}

{% macro kap_incremental_state_relation() -%}
    {{ return(api.Relation.create(database=this.database, schema='staging', identifier='kap_incremental_state')) }}
{%- endmacro %}

{% macro kap_incremental_fingerprint() -%}
    {%- set parts = [] -%}
    {%- for node in graph.nodes.values() | sort(attribute='unique_id') -%}
        {%- if node.resource_type in ('model', 'seed') and node.package_name == project_name -%}
            {%- do parts.append(node.unique_id ~ '=' ~ node.checksum.checksum) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do parts.append('as_of=' ~ (var('as_of', none) | string)) -%}
    {%- do parts.append('episode_gap_days=' ~ var('episode_gap_days')) -%}
    {%- do parts.append('dropout_days=' ~ var('dropout_days')) -%}
    {%- do parts.append('dose_match=' ~ var('dose_match_hours', 12) ~ '/' ~ var('dose_match_rounds', 3)) -%}
    {#- the time-zone settings date the doses: a change rebuilds in full (a FHIR timezone
        extension that changes needs kap build --full-refresh) -#}
    {%- do parts.append('time_zones=' ~ (clinic_time_zone_settings() | tojson) ~ ';default=' ~ default_time_zone()) -%}
    {{ return(local_md5(parts | join('\n'))) }}
{%- endmacro %}

{% macro kap_incremental_ensure_state() -%}
    {%- set state = kap_incremental_state_relation() -%}
    {%- do run_query("create schema if not exists " ~ state.include(identifier=false)) -%}
    {%- do run_query("create table if not exists " ~ state ~ " (model_name " ~ dbt.type_string()
                     ~ ", fingerprint " ~ dbt.type_string() ~ ", ingested_through " ~ dbt.type_string() ~ ")") -%}
{%- endmacro %}

{#- The watermark (a timestamp literal) when this build is a DELTA, else none (FULL). -#}
{% macro kap_incremental_watermark() -%}
    {%- if not execute or this is none or not is_incremental() or kap_as_of() is not none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- do kap_incremental_ensure_state() -%}
    {%- set rows = run_query("select ingested_through from " ~ kap_incremental_state_relation()
                             ~ " where model_name = '" ~ this.identifier ~ "' and fingerprint = '"
                             ~ kap_incremental_fingerprint() ~ "'").rows -%}
    {%- if rows | length == 0 or rows[0][0] is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return("cast('" ~ rows[0][0] ~ "' as " ~ dbt.type_timestamp() ~ ")") }}
{%- endmacro %}

{#- SQL for the entities touched since `watermark`, as a comparable key (see the header). -#}
{% macro kap_touched_keys(kind, watermark) -%}
    {%- set events = source('raw', 'events') -%}
    {%- if kind == 'record' -%}
    select distinct source || '|' || source_record_id from {{ events }} where ingested_at > {{ watermark }}
    {%- elif kind == 'patient' -%}
    {%- set raw_keys -%}
    select distinct ev.patient_key
    from {{ events }} as ev
    inner join (
        select distinct source, source_record_id from {{ events }} where ingested_at > {{ watermark }}
    ) as touched
        on touched.source = ev.source and touched.source_record_id = ev.source_record_id
    where ev.patient_key is not null
    {%- endset -%}
    {#- a touched key touches its chart-merge partners too (stg_ehr__patient_merges): rows move
        between the retired and the surviving key when a link arrives -#}
    {{ raw_keys }}
    union
    select m.survivor_patient_key from {{ ref('stg_ehr__patient_merges') }} as m
    where m.merged_patient_key in ({{ raw_keys }})
    union
    select m.merged_patient_key from {{ ref('stg_ehr__patient_merges') }} as m
    where m.survivor_patient_key in ({{ raw_keys }})
    {%- else -%}
    {{ exceptions.raise_compiler_error("kap_touched_keys: kind must be record or patient, got " ~ kind) }}
    {%- endif -%}
{%- endmacro %}

{% macro kap_entity_key(kind, alias=none) -%}
    {%- set p = (alias ~ '.') if alias else '' -%}
    {%- if kind == 'record' -%}{{ p }}source || '|' || {{ p }}source_record_id{%- else -%}{{ p }}patient_key{%- endif -%}
{%- endmacro %}

{#- A predicate for the model's input rows: true in a FULL build, the touched entities in a DELTA. -#}
{% macro kap_incremental_filter(kind, alias=none) -%}
    {%- set watermark = kap_incremental_watermark() -%}
    {%- if watermark is none -%}
    1 = 1
    {%- else -%}
    {{ kap_entity_key(kind, alias) }} in ({{ kap_touched_keys(kind, watermark) }})
    {%- endif -%}
{%- endmacro %}

{#- pre-hook: FULL empties the table, DELTA deletes the touched entities' rows. -#}
{% macro kap_incremental_prune(kind) -%}
    {%- if execute and this is not none and is_incremental() -%}
        {%- set watermark = kap_incremental_watermark() -%}
        {%- if watermark is none -%}
    delete from {{ this }}
        {%- else -%}
    delete from {{ this }} where {{ kap_entity_key(kind) }} in ({{ kap_touched_keys(kind, watermark) }})
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- post-hook: record what this build covered (fingerprint and the log's max ingested_at). -#}
{% macro kap_incremental_mark() -%}
    {%- if execute -%}
        {%- do kap_incremental_ensure_state() -%}
        {%- set state = kap_incremental_state_relation() -%}
    delete from {{ state }} where model_name = '{{ this.identifier }}';
    insert into {{ state }} (model_name, fingerprint, ingested_through)
    select '{{ this.identifier }}', '{{ kap_incremental_fingerprint() }}',
           cast(max(ingested_at) as {{ dbt.type_string() }})
    from {{ source('raw', 'events') }}
    {%- endif -%}
{%- endmacro %}
