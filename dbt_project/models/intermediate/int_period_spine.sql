{#- Every month, quarter and year from the first month any metric's data covers to the last
    month any of it covers: the calendar metric_values is complete against. -#}
with datasets as (
    select provider, dataset from {{ ref('stg_catalog__datasets') }} where measures > 0
),

bounds as (
    select min(m.month) as first_month, max(m.month) as last_month
    from {{ ref('int_dataset_months') }} as m
    inner join datasets using (provider, dataset)
),

months as (
    select cast(unnest(generate_series(
        cast(first_month as timestamp), cast(last_month as timestamp), interval 1 month
    )) as date) as month
    from bounds
    where first_month is not null
),

periods as (
    select distinct 'month' as period_level, month as period_start from months
    union all
    select distinct 'quarter', cast(date_trunc('quarter', month) as date) from months
    union all
    select distinct 'year', cast(date_trunc('year', month) as date) from months
)

select
    period_level,
    period_start,
    {{ period_end('period_level', 'period_start') }} as period_end
from periods
