{#- One row per metric and source dataset it reads (numerator, denominator, population). -#}
with definitions as (
    select metric_id, unnest(source_datasets) as source_dataset
    from {{ ref('stg_catalog__metric_definitions') }}
)

select
    d.metric_id,
    split_part(d.source_dataset, '.', 1) as provider,
    split_part(d.source_dataset, '.', 2) as dataset,
    s.has_period,
    s.no_delivery_months
from definitions as d
left join {{ ref('stg_catalog__datasets') }} as s
    on s.provider = split_part(d.source_dataset, '.', 1)
    and s.dataset = split_part(d.source_dataset, '.', 2)
