select * from {{ source('catalog', 'metric_definitions') }}
