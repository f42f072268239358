{#- The staging view every provider's cells get: the same columns, plus the provider's name. -#}
{% macro stg_cells(provider) %}
select
    audience,
    measure_id,
    '{{ provider }}' as provider,
    period_level,
    period_start,
    geo_level,
    geo_code,
    breakdown,
    n,
    value,
    suppressed,
    min_cell_size
from {{ source(provider, 'cells') }}
{% endmacro %}
