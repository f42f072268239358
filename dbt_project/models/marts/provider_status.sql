{#- The delivery scorecard: per provider and dataset, is the data in, on time and complete, and
    who answers for it. "Today" is the var as_of (the run date, or CS360_AS_OF).

    - freshness_status: days since the latest delivery (its _loaded_at stamp) against the
      dataset's warn/error limits; `dbt source freshness` reports the same.
    - data_status: days since the end of the latest month delivered (plus the months the dataset
      never delivers, such as a school's July) against the same limits: a partner can deliver on
      time and still send old months.
    - missing_months: months inside the series (first to latest delivered) that were not
      delivered, not counting the dataset's no-delivery months.
    - delivery_size_status: the latest file's rows per month against the median of the twelve
      files before it; under half is shrunken.
    - ownership_status: whether the dataset (or its provider) names a data owner and a steward.
    - files_quarantined_open: quarantined files delivered after the dataset's latest accepted
      file. Each waits for the partner's corrected delivery: the next file of the dataset that
      loads clears it, whichever months it brings (a month left out shows in missing_months).
    severity is the worst of them: error, warn or ok. -#}
with datasets as (
    select * from {{ ref('stg_catalog__datasets') }}
),

ledger as (
    select * from {{ ref('stg_catalog__deliveries') }}
),

delivered_months as (
    select * from {{ ref('int_dataset_months') }}
),

files as (
    select
        provider,
        dataset,
        count(*) filter (where status = 'loaded') as files_loaded,
        count(*) filter (where status = 'quarantined') as files_quarantined,
        count(*) filter (where status = 'duplicate') as files_duplicate,
        max(_loaded_at) as last_delivered_at,
        max(processed_at) filter (where status = 'loaded') as last_accepted_at
    from ledger
    group by provider, dataset
),

awaiting_fix as (
    select l.provider, l.dataset, count(*) as files_quarantined_open
    from ledger as l
    inner join files as f using (provider, dataset)
    where l.status = 'quarantined'
        and (f.last_accepted_at is null or l.processed_at > f.last_accepted_at)
    group by l.provider, l.dataset
),

coverage as (
    select provider, dataset, min(month) as first_period, max(month) as latest_period
    from delivered_months
    group by provider, dataset
),

sizes as (
    select
        provider,
        dataset,
        rows_loaded / (coalesce(date_diff('month', first_period, last_period), 0) + 1)
            as rows_per_month,
        row_number() over (
            partition by provider, dataset
            order by coalesce(last_period, date '1900-01-01') desc, processed_at desc, file_name desc
        ) as recency
    from ledger
    where status = 'loaded' and rows_loaded is not null
),

size_check as (
    select
        provider,
        dataset,
        max(rows_per_month) filter (where recency = 1) as latest_rows_per_month,
        median(rows_per_month) filter (where recency between 2 and 13) as usual_rows_per_month,
        count(*) filter (where recency between 2 and 13) as earlier_files
    from sizes
    group by provider, dataset
),

gaps as (
    select
        d.provider,
        d.dataset,
        count(*) as missing_months,
        string_agg(strftime(s.month, '%Y-%m'), ', ' order by s.month) as missing_month_list
    from datasets as d
    inner join coverage as c using (provider, dataset)
    cross join lateral (
        select cast(unnest(generate_series(
            cast(c.first_period as timestamp), cast(c.latest_period as timestamp), interval 1 month
        )) as date) as month
    ) as s
    left join delivered_months as m
        on m.provider = d.provider and m.dataset = d.dataset and m.month = s.month
    where m.month is null and not list_contains(d.no_delivery_months, month(s.month))
    group by d.provider, d.dataset
),

calendar_skip as (
    -- months right after the latest one that the dataset never delivers (a school's July)
    select
        d.provider,
        d.dataset,
        coalesce(
            min(k) filter (
                where not list_contains(
                    d.no_delivery_months, month(c.latest_period + to_months(cast(k as integer)))
                )
            ),
            13
        ) - 1 as skip_months
    from datasets as d
    inner join coverage as c using (provider, dataset)
    cross join range(1, 13) as r(k)
    group by d.provider, d.dataset
),

measured as (
    select
        d.*,
        coalesce(f.files_loaded, 0) as files_loaded,
        coalesce(f.files_quarantined, 0) as files_quarantined,
        coalesce(f.files_duplicate, 0) as files_duplicate,
        coalesce(q.files_quarantined_open, 0) as files_quarantined_open,
        f.last_delivered_at,
        cast(f.last_delivered_at as date) as last_delivered_on,
        c.first_period,
        cast(last_day(c.latest_period) as date) as data_through,
        cast(last_day(c.latest_period + to_months(cast(k.skip_months as integer))) as date)
            as due_from,
        coalesce(g.missing_months, 0) as missing_months,
        g.missing_month_list,
        s.latest_rows_per_month,
        s.usual_rows_per_month,
        coalesce(s.earlier_files, 0) as earlier_files,
        {{ as_of_date() }} as as_of
    from datasets as d
    left join files as f using (provider, dataset)
    left join awaiting_fix as q using (provider, dataset)
    left join coverage as c using (provider, dataset)
    left join gaps as g using (provider, dataset)
    left join size_check as s using (provider, dataset)
    left join calendar_skip as k using (provider, dataset)
),

statused as (
    select
        *,
        case cadence
            when 'daily' then cast(last_delivered_on + interval 1 day as date)
            when 'weekly' then cast(last_delivered_on + interval 7 day as date)
            when 'monthly' then cast(last_delivered_on + interval 1 month as date)
            when 'quarterly' then cast(last_delivered_on + interval 3 month as date)
            when 'annual' then cast(last_delivered_on + interval 1 year as date)
        end as next_expected_by,
        -- NULL when nothing was delivered (greatest() skips a NULL: it would say 0 days)
        case
            when last_delivered_on is not null
                then greatest(cast(as_of - last_delivered_on as integer), 0)
        end as days_since_delivery,
        case
            when data_through is not null then greatest(cast(as_of - data_through as integer), 0)
        end as days_since_data,
        case
            when files_loaded = 0 then 'never_delivered'
            when warn_after_days is null then 'not_scheduled'
            when as_of - last_delivered_on > error_after_days then 'overdue'
            when as_of - last_delivered_on > warn_after_days then 'late'
            else 'on_time'
        end as freshness_status,
        case
            when files_loaded = 0 then 'no_data'
            when warn_after_days is null or not has_period then 'not_scheduled'
            when data_through is null then 'no_data'
            when as_of - due_from > error_after_days then 'far_behind'
            when as_of - due_from > warn_after_days then 'behind'
            else 'current'
        end as data_status,
        case
            when latest_rows_per_month is null then 'never_delivered'
            when earlier_files < 3 then 'not_enough_history'
            when latest_rows_per_month < 0.5 * usual_rows_per_month then 'shrunken'
            else 'usual'
        end as delivery_size_status,
        case
            when data_owner is null and steward is null then 'no_owner_or_steward'
            when data_owner is null then 'no_owner'
            when steward is null then 'no_steward'
            else 'named'
        end as ownership_status
    from measured
),

flagged as (
    select
        *,
        case
            when freshness_status in ('never_delivered', 'overdue')
                or data_status = 'far_behind'
                or missing_months > 0
                or ownership_status in ('no_owner', 'no_owner_or_steward')
                then 'error'
            when freshness_status = 'late'
                or data_status = 'behind'
                or delivery_size_status = 'shrunken'
                or ownership_status = 'no_steward'
                or files_quarantined_open > 0
                then 'warn'
            else 'ok'
        end as severity,
        concat_ws(
            '; ',
            case freshness_status
                when 'never_delivered' then 'never delivered'
                when 'overdue' then 'overdue: last delivery ' || days_since_delivery || ' days ago'
                when 'late' then 'late: last delivery ' || days_since_delivery || ' days ago'
            end,
            case data_status
                when 'far_behind' then 'data far behind: through ' || strftime(data_through, '%Y-%m-%d')
                when 'behind' then 'data behind: through ' || strftime(data_through, '%Y-%m-%d')
            end,
            case
                when missing_months > 0
                    then missing_months || ' month(s) missing: ' || missing_month_list
            end,
            case
                when delivery_size_status = 'shrunken'
                    then 'shrunken delivery: '
                        || round(100 * latest_rows_per_month / usual_rows_per_month)
                        || '% of the usual rows per month'
            end,
            case ownership_status
                when 'no_owner_or_steward' then 'no data owner or steward named'
                when 'no_owner' then 'no data owner named'
                when 'no_steward' then 'no steward named'
            end,
            case
                when files_quarantined_open > 0
                    then files_quarantined_open
                        || ' quarantined file(s) awaiting a corrected delivery'
            end
        ) as issues
    from statused
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
    ownership_status,
    files_loaded,
    files_quarantined,
    files_quarantined_open,
    files_duplicate,
    last_delivered_at,
    last_delivered_on,
    next_expected_by,
    days_since_delivery,
    warn_after_days,
    error_after_days,
    freshness_status,
    first_period,
    data_through,
    days_since_data,
    data_status,
    missing_months,
    missing_month_list,
    -- rows per month of the latest file against the usual ones, as a ratio only: a file's row
    -- count can be small, and stays in the ledger (`cs360 status --files`)
    case
        when usual_rows_per_month > 0
            then round(latest_rows_per_month / usual_rows_per_month, 2)
    end as delivery_size_ratio,
    delivery_size_status,
    severity,
    nullif(issues, '') as issues,
    as_of
from flagged
order by provider, dataset
