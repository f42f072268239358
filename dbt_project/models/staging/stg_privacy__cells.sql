select
    audience,
    measure_id,
    provider,
    period_level,
    period_start,
    geo_level,
    geo_code,
    breakdown,
    n,
    value,
    suppressed,
    min_cell_size
from {{ source('privacy', 'cells') }}
