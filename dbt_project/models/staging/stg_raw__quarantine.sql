select
    file_id,
    line_number,
    reason_code,
    quarantined_at
from {{ source('raw', 'quarantine') }}
