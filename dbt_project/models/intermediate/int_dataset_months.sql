{#- The months each dataset has delivered: every month from the first to the last period of
    every loaded file that no later file replaced, and how far each month's data runs
    (data_through). A month before the dataset's latest one runs to its last day; the latest
    month runs to the last date its files' rows cover (the ledger's data_through, a date per
    file, never a row), so a final month delivered through the 5th is known to be partial.
    Files recorded before the ledger kept that date count as covering their months whole. -#}
with files as (
    select provider, dataset, first_period, last_period, data_through
    from {{ source('catalog', 'deliveries') }}
    where status = 'loaded' and superseded_by is null and first_period is not null
),

months as (
    select
        provider,
        dataset,
        data_through,
        cast(unnest(generate_series(
            cast(date_trunc('month', first_period) as timestamp),
            cast(date_trunc('month', last_period) as timestamp),
            interval 1 month
        )) as date) as month
    from files
),

by_month as (
    select
        provider,
        dataset,
        month,
        -- the latest date any current file covers inside this month (null: none says)
        max(data_through) filter (where date_trunc('month', data_through) = month) as last_date,
        -- a file whose data runs past this month covers it whole
        bool_or(data_through is null or data_through > last_day(month)) as covered_whole
    from months
    group by provider, dataset, month
)

select
    provider,
    dataset,
    month,
    cast(
        case
            when month < max(month) over (partition by provider, dataset) then last_day(month)
            when covered_whole then last_day(month)
            else least(coalesce(last_date, last_day(month)), last_day(month))
        end as date
    ) as data_through
from by_month
