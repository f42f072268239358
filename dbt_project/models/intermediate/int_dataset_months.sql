{#- The months each dataset has delivered: every month from the first to the last period of
    every loaded file that no later file replaced. -#}
with files as (
    select provider, dataset, first_period, last_period
    from {{ ref('stg_catalog__deliveries') }}
    where status = 'loaded' and superseded_by is null and first_period is not null
),

months as (
    select
        provider,
        dataset,
        cast(unnest(generate_series(
            cast(date_trunc('month', first_period) as timestamp),
            cast(date_trunc('month', last_period) as timestamp),
            interval 1 month
        )) as date) as month
    from files
)

select distinct provider, dataset, month
from months
