{#- Grain: one row per source record (source, source_record_id) that is current and not retracted
    as of var as_of. A table, because every staging view reads it and the window runs once. -#}
{{ config(materialized='table') }}

{{ resolve_current_versions(source('raw', 'events')) }}
