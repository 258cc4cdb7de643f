select
    file_id,
    path as file_path,
    source,
    status as file_status,
    reject_reason,
    size_bytes,
    records_read,
    records_accepted,
    records_quarantined,
    records_duplicate,
    records_ignored,
    events_added,
    ingested_at,
    run_id
from {{ source('raw', 'ingest_files') }}
