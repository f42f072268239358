select
    provider,
    dataset,
    file_name,
    sha256,
    size_bytes,
    rows_read,
    rows_loaded,
    status,
    reason,
    first_period,
    last_period,
    processed_at,
    revision_of,
    superseded_by,
    _loaded_at
from {{ source('catalog', 'deliveries') }}
