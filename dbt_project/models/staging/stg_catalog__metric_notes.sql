select metric_id, audience, note_order, period_from, period_to, note
from {{ source('catalog', 'metric_notes') }}
