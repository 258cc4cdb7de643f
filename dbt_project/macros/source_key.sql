{#- (ours) A source record id -> its surrogate key, the only form in which a record id leaves
    staging. Keyed with the warehouse's secret (restricted.secrets, name 'source_id_key': 256
    random bits, made once by ingest.schema.ensure_event_log): the same id gets the same key every
    night, and nobody without the secret can compute or test a key from a source id (an MRN
    inside a dosing id, a Patient.id inside an appointment id). `entity` is the FHIR resource type
    the id names ('Appointment', 'Encounter', ...), or 'dosing' / 'note', so a reference and the
    record it names get the same key. restricted.source_record_keys maps keys back to source ids.
    32 hex characters (128 bits of sha256). -#}
{% macro source_key(entity, expr) -%}
    {{ return(adapter.dispatch('source_key', 'kap')(entity, expr)) }}
{%- endmacro %}
{% macro duckdb__source_key(entity, expr) -%}
    case when ({{ expr }}) is not null then left(sha256(
        (select value from restricted.secrets where name = 'source_id_key')
        || '|{{ entity }}|' || ({{ expr }})), 32) end
{%- endmacro %}

{#- Spark: sha2(.., 256) is sha256; the secret comes from var kap_secrets (a relation with name and
    value: kap's Spark build registers a temporary view, a cluster keeps a restricted table). -#}
{% macro spark__source_key(entity, expr) -%}
    case when ({{ expr }}) is not null then left(sha2(
        (select value from {{ var('kap_secrets', 'restricted.secrets') }} where name = 'source_id_key')
        || '|{{ entity }}|' || ({{ expr }}), 256), 32) end
{%- endmacro %}
