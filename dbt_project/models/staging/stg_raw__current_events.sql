{#- Grain: one row per source record (source, source_record_id) that is current and not retracted
    as of var as_of. A table, because every staging view reads it and the window runs once.
    Incremental (macros/incremental.sql): a nightly build re-resolves only the records with an event
    ingested since the last build (delete + insert per record; a retracted record's row is deleted
    and not re-inserted); an as-of build, or the first build after one, is a full rebuild. -#}
{{ kap_incremental_config('record') }}

{{ resolve_current_versions(source('raw', 'events'), kap_incremental_filter('record', 'ev')) }}
