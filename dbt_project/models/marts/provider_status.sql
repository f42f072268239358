{#- The delivery scorecard: per provider and dataset, what arrived, how current it is, and who to
    call. "As of" is the date the pipeline ran (var as_of), so a late partner shows as late. -#}
with datasets as (
    select * from {{ ref('stg_catalog__datasets') }}
),

deliveries as (
    select
        provider,
        dataset,
        count(*) filter (where status = 'loaded') as files_loaded,
        count(*) filter (where status = 'quarantined') as files_quarantined,
        count(*) filter (where status = 'duplicate') as files_duplicate,
        cast(max(processed_at) filter (where status = 'loaded') as date) as last_delivered_on,
        max(last_period) filter (where status = 'loaded') as latest_period
    from {{ ref('stg_catalog__deliveries') }}
    group by provider, dataset
),

measured as (
    select
        d.*,
        coalesce(l.files_loaded, 0) as files_loaded,
        coalesce(l.files_quarantined, 0) as files_quarantined,
        coalesce(l.files_duplicate, 0) as files_duplicate,
        l.last_delivered_on,
        l.latest_period,
        cast(last_day(l.latest_period) as date) as data_through,
        cast('{{ var("as_of") }}' as date) as as_of
    from datasets as d
    left join deliveries as l using (provider, dataset)
)

select
    provider,
    organisation,
    community_map_area,
    dataset,
    title,
    cadence,
    data_owner,
    steward,
    steward_email,
    files_loaded,
    files_quarantined,
    files_duplicate,
    last_delivered_on,
    data_through,
    case
        when data_through is not null and warn_after_days is not null
            then cast(data_through + to_days(warn_after_days) as date)
    end as next_expected_by,
    cast(as_of - data_through as integer) as days_since_data,
    case
        when files_loaded = 0 then 'never_delivered'
        when warn_after_days is null or data_through is null then 'not_scheduled'
        when as_of - data_through > error_after_days then 'overdue'
        when as_of - data_through > warn_after_days then 'late'
        else 'on_time'
    end as freshness_status,
    as_of
from measured
order by provider, dataset
