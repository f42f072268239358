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
    processed_at
from {{ source('catalog', 'deliveries') }}
