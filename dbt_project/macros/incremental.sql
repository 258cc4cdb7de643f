{#- Incremental builds that stay equal to a full rebuild (README: "Incremental models").

    Each incremental model keeps a row in staging.kap_incremental_state: a fingerprint of what it
    was built with (the checksums of the project's model files, the vars, as_of, the time-zone
    settings KAP_TIMEZONE / KAP_CLINIC_TIMEZONES and the zones in force in int_clinic_time_zones;
    macro code is not in the dbt graph: after changing a macro, build once with --full-refresh) and the event log's
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
               post_hook="{{ kap_incremental_mark('patient') }}"))
    and `where {{ kap_incremental_filter('patient', 'alias') }}` where the model reads its input.

    On Spark the same models are tables, rebuilt in full on every build (no Delta Lake here:
    plain Parquet tables take no DELETE, and a hook is one statement): the filter is then `1 = 1`
    and the hooks are not set. Equal results, more work per night (docs/scaling.md). -#}

{#- touched: how a DELTA of a `patient` model reads the touched patients - 'list' (the keys inlined:
    DuckDB pushes them into the model's scan of the event log) or 'subquery' (a semi-join on
    stg_raw__touched_patients, faster where the list would be matched against a large join or
    aggregate; chosen per model from the nightly build's node times, README "Performance"). -#}
{% macro kap_incremental_config(kind, touched='list') -%}
    {{ return(adapter.dispatch('kap_incremental_config', 'kap')(kind, touched)) }}
{%- endmacro %}
{% macro duckdb__kap_incremental_config(kind, touched='list') -%}
    {%- if touched not in ('list', 'subquery') -%}
        {{ exceptions.raise_compiler_error("kap_incremental_config: touched must be 'list' or 'subquery', got " ~ touched) }}
    {%- endif -%}
    {%- do config(materialized='incremental', incremental_strategy='append',
                  on_schema_change='sync_all_columns',
                  meta={'kap_touched_patients': touched},
                  pre_hook="{{ kap_incremental_prune('" ~ kind ~ "') }}",
                  post_hook="{{ kap_incremental_mark('" ~ kind ~ "') }}") -%}
{%- endmacro %}
{% macro spark__kap_incremental_config(kind, touched='list') -%}
    {%- do config(materialized='table') -%}
{%- endmacro %}

{% macro kap_incremental_state_relation() -%}
    {{ return(api.Relation.create(database=this.database, schema='staging', identifier='kap_incremental_state')) }}
{%- endmacro %}

{% macro kap_incremental_fingerprint(kind='patient') -%}
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
    {#- the time-zone settings date the doses: a change rebuilds in full -#}
    {%- do parts.append('time_zones=' ~ (clinic_time_zone_settings() | tojson) ~ ';default=' ~ default_time_zone()) -%}
    {#- and, for the per-patient models, the zones in force (a clinic's FHIR timezone extension
        arriving or changing re-dates its patients' doses and sessions: their next build is full) -#}
    {%- if execute and target.type == 'duckdb' and kind == 'patient' -%}
        {#- by name, not ref(): models upstream of it (stg_raw__current_events) keep a fingerprint too -#}
        {%- set zones = api.Relation.create(database=this.database, schema='intermediate', identifier='int_clinic_time_zones') -%}
        {%- if adapter.get_relation(database=zones.database, schema=zones.schema, identifier=zones.identifier) is not none -%}
            {%- set in_force = run_query("select string_agg(clinic_id || '=' || time_zone, ',' order by clinic_id) from " ~ zones).rows[0][0] -%}
            {%- do parts.append('zones_in_force=' ~ in_force) -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(local_md5(parts | join('\n'))) }}
{%- endmacro %}

{% macro kap_incremental_ensure_state() -%}
    {%- set state = kap_incremental_state_relation() -%}
    {%- do run_query("create schema if not exists " ~ state.include(identifier=false)) -%}
    {%- do run_query("create table if not exists " ~ state ~ " (model_name " ~ dbt.type_string()
                     ~ ", fingerprint " ~ dbt.type_string() ~ ", ingested_through " ~ dbt.type_string() ~ ")") -%}
{%- endmacro %}

{#- The watermark (a timestamp literal) when this build is a DELTA, else none (FULL). -#}
{% macro kap_incremental_watermark(kind) -%}
    {%- if not execute or this is none or not is_incremental() or kap_as_of() is not none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- do kap_incremental_ensure_state() -%}
    {%- set rows = run_query("select ingested_through from " ~ kap_incremental_state_relation()
                             ~ " where model_name = '" ~ this.identifier ~ "' and fingerprint = '"
                             ~ kap_incremental_fingerprint(kind) ~ "'").rows -%}
    {%- if rows | length == 0 or rows[0][0] is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return("cast('" ~ rows[0][0] ~ "' as " ~ dbt.type_timestamp() ~ ")") }}
{%- endmacro %}

{#- SQL for the entities touched since `watermark`, as a comparable key (see the header).
    Patients: the whole chart-merge group of each touched patient (every key whose survivor is the
    survivor of a touched key), so that filtering a staging view on the key a record was sent with
    (record_patient_key) selects exactly the rows a filter on the survivor key would. A build
    computes this set once (stg_raw__touched_patients) and the models read it as a literal list,
    which DuckDB pushes down into the scan of the event log; without a usable set the SQL is inlined. -#}
{% macro kap_touched_keys(kind, watermark) -%}
    {%- if kind == 'record' -%}
    select distinct source || '|' || source_record_id from {{ source('raw', 'events') }} where ingested_at > {{ watermark }}
    {%- elif kind == 'patient' -%}
    {%- set listed = kap_touched_patients_listed(watermark) -%}
    {%- if listed is not none -%}{{ listed }}{%- else -%}{{ kap_touched_patients_sql(watermark) }}{%- endif -%}
    {%- else -%}
    {{ exceptions.raise_compiler_error("kap_touched_keys: kind must be record or patient, got " ~ kind) }}
    {%- endif -%}
{%- endmacro %}

{#- The merge-group-closed patient keys with an event version of a record ingested after `watermark`
    (any version: a correction moving a record to another patient touches both), and the charts
    any version of a touched Patient links to (a merge added or undone moves rows between them). -#}
{% macro kap_touched_patients_sql(watermark) -%}
    {%- set events = source('raw', 'events') -%}
    {%- set merges = ref('stg_ehr__patient_merges') -%}
    with kap_touched_versions as (
        select ev.patient_key, ev.event_type, ev.payload
        from {{ events }} as ev
        inner join (
            select distinct source, source_record_id from {{ events }} where ingested_at > {{ watermark }}
        ) as touched
            on touched.source = ev.source and touched.source_record_id = ev.source_record_id
    ),
    kap_linked_ids as (
        -- the charts any version of a touched Patient links to: a link added, changed or removed
        -- tonight moves rows from or to them
        select {{ json_text('payload', 'replaced_by_id') }} as other_id from kap_touched_versions
        where event_type in ('patient_registered', 'patient_updated')
        union
        select {{ json_text('payload', 'replaces_id') }} from kap_touched_versions
        where event_type in ('patient_registered', 'patient_updated')
    ),
    kap_raw_keys as (
        select patient_key from kap_touched_versions where patient_key is not null
        union
        select c.patient_key
        from kap_linked_ids as l
        inner join {{ events }} as c on c.source_record_id = 'Patient/' || l.other_id
        where l.other_id is not null and c.patient_key is not null
    ),
    kap_survivors as (
        select distinct coalesce(m.survivor_patient_key, r.patient_key) as patient_key
        from kap_raw_keys as r
        left join {{ merges }} as m on m.merged_patient_key = r.patient_key
    )
    select patient_key from kap_survivors
    union
    select m.merged_patient_key from {{ merges }} as m
    where m.survivor_patient_key in (select patient_key from kap_survivors)
{%- endmacro %}

{#- Above this many touched patients the list is not inlined (the set is read as a subquery). -#}
{% macro kap_touched_list_max() -%}{{ return(20000) }}{%- endmacro %}

{#- The touched patients as a SQL list (or a subquery when long) from stg_raw__touched_patients when
    that table was built in this build for a watermark at or before `watermark` (so it holds every
    patient this model needs; recomputing more patients gives the same rows); else none. -#}
{% macro kap_touched_patients_listed(watermark) -%}
    {%- if not execute -%}{{ return(none) }}{%- endif -%}
    {%- set inline = (config.get('meta') or {}).get('kap_touched_patients', 'list') != 'subquery' -%}
    {{ return(kap_touched_list(ref('stg_raw__touched_patients'), 'touched_since <= ' ~ watermark, inline=inline)) }}
{%- endmacro %}

{#- The keys of the touched set `touched` as SQL for `in (...)`: a quoted list, a subquery when
    longer than kap_touched_list_max() or when `inline` is false, an empty subquery when nobody was
    touched; none when the set does not exist or was not built for the log as it is now with its
    header row's touched_since meeting `since` (SQL). One query: the header check, the count and the list.
    A model chooses its form in kap_incremental_config(kind, touched=...); a data test on a staging
    view reads the subquery (measured at 10k and 50k patients: README, "Performance"). -#}
{% macro kap_touched_list(touched, since, inline=true) -%}
    {%- if adapter.get_relation(database=touched.database, schema=touched.schema, identifier=touched.identifier) is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set quote = "'" -%}
    {%- set row = run_query(
        "select bool_or(patient_key is null and " ~ since ~ " and through = (select max(ingested_at) from "
        ~ source('raw', 'events') ~ ")), count(patient_key), string_agg(" ~ quote * 4 ~ " || replace(patient_key, "
        ~ quote * 4 ~ ", " ~ quote * 6 ~ ") || " ~ quote * 4 ~ ", ', ' order by patient_key) from " ~ touched).rows[0] -%}
    {%- if not row[0] -%}{{ return(none) }}{%- endif -%}
    {%- if row[1] == 0 -%}{{ return("select cast(null as " ~ dbt.type_string() ~ ") where 1 = 0") }}{%- endif -%}
    {%- if not inline or row[1] > kap_touched_list_max() | int -%}
        {{ return("select patient_key from " ~ touched ~ " where patient_key is not null") }}
    {%- endif -%}
    {{ return(row[2]) }}
{%- endmacro %}

{#- The earliest watermark of the patient models' current builds (none when none can be a delta):
    stg_raw__touched_patients computes the touched set from it. -#}
{% macro kap_touched_since() -%}
    {%- if not execute or target.type != 'duckdb' or kap_as_of() is not none -%}{{ return(none) }}{%- endif -%}
    {%- set names = [] -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.package_name == project_name
              and "kap_incremental_prune('patient')" in (node.config.get('pre-hook', []) | map(attribute='sql') | join(' ')) -%}
            {%- do names.append("'" ~ node.name ~ "'") -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do kap_incremental_ensure_state() -%}
    {%- set rows = run_query("select min(ingested_through) from " ~ kap_incremental_state_relation()
                             ~ " where fingerprint = '" ~ kap_incremental_fingerprint('patient') ~ "' and model_name in ("
                             ~ names | join(', ') ~ ")").rows -%}
    {%- if names | length == 0 or rows[0][0] is none -%}{{ return(none) }}{%- endif -%}
    {{ return("cast('" ~ rows[0][0] ~ "' as " ~ dbt.type_timestamp() ~ ")") }}
{%- endmacro %}

{% macro kap_entity_key(kind, alias=none, column=none) -%}
    {%- set p = (alias ~ '.') if alias else '' -%}
    {%- if kind == 'record' -%}{{ p }}source || '|' || {{ p }}source_record_id{%- else -%}{{ p }}{{ column or 'patient_key' }}{%- endif -%}
{%- endmacro %}

{#- A predicate for the model's input rows: true in a FULL build, the touched entities in a DELTA.
    On a staging view pass column='record_patient_key' (the key the record was sent with): a
    filter on it reaches the event log's scan, one on the survivor key does not. -#}
{% macro kap_incremental_filter(kind, alias=none, column=none) -%}
    {%- set watermark = kap_incremental_watermark(kind) -%}
    {%- if watermark is none -%}
    1 = 1
    {%- else -%}
    {{ kap_entity_key(kind, alias, column) }} in ({{ kap_touched_keys(kind, watermark) }})
    {%- endif -%}
{%- endmacro %}

{#- pre-hook: FULL empties the table, DELTA deletes the touched entities' rows. -#}
{% macro kap_incremental_prune(kind) -%}
    {%- if execute and this is not none and is_incremental() -%}
        {%- set watermark = kap_incremental_watermark(kind) -%}
        {%- if watermark is none -%}
    delete from {{ this }}
        {%- else -%}
    delete from {{ this }} where {{ kap_entity_key(kind) }} in ({{ kap_touched_keys(kind, watermark) }})
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- post-hook: record what this build covered (fingerprint and the log's max ingested_at). -#}
{% macro kap_incremental_mark(kind) -%}
    {%- if execute -%}
        {%- do kap_incremental_ensure_state() -%}
        {%- set state = kap_incremental_state_relation() -%}
    delete from {{ state }} where model_name = '{{ this.identifier }}';
    insert into {{ state }} (model_name, fingerprint, ingested_through)
    select '{{ this.identifier }}', '{{ kap_incremental_fingerprint(kind) }}',
           cast(max(ingested_at) as {{ dbt.type_string() }})
    from {{ source('raw', 'events') }}
    {%- endif -%}
{%- endmacro %}
