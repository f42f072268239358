{#- One row per CS360 metric and audience: what it is, who owns it, what it says now and whether
    its data can be trusted.

    Values are the city-wide totals of metric_values as that audience sees them, at the metric's
    cadence level (month for monthly metrics), or the next coarser level when the latest period
    at the cadence level is not shown (suppressed, or a sparse metric not published that
    finely). Only complete periods count (metric_values.period_complete): a partial month,
    quarter or year (a final month delivered through the 5th, a year not over) never feeds the
    latest value, the previous one, the baseline, the trend or the target. latest is the last
    complete period with data, previous the one before it; the baseline is the mean over the
    baseline window's periods, and only when every one of them is complete and shown (no
    baseline otherwise, never one from part of the window); the trend and the target compare
    the latest value. A metric is stale when a source dataset is late, overdue, never
    delivered, or its data is behind. -#}
with definitions as (
    select * from {{ ref('stg_catalog__metric_definitions') }}
),

rules as (
    select * from {{ ref('stg_catalog__privacy_rules') }}
),

metric_audiences as (
    select d.metric_id, r.audience, r.min_cell_size
    from definitions as d
    inner join rules as r on r.metric_id = d.metric_id and list_contains(d.audiences, r.audience)
),

city as (
    select audience, metric_id, period_level, period_start, value, status
    from {{ ref('metric_values') }}
    where geo_level = 'city' and breakdown = 'total' and status <> 'missing' and period_complete
),

level_latest as (
    -- each level's last period with data, and whether its value there is shown
    select
        audience,
        metric_id,
        period_level,
        arg_max(value is not null, period_start) as latest_has_value
    from city
    group by audience, metric_id, period_level
),

levels as (
    select
        c.audience,
        c.metric_id,
        c.period_level,
        row_number() over (
            partition by c.audience, c.metric_id
            order by
                -- a level whose latest period has a value, then the cadence level, then
                -- coarser levels, finer ones last
                c.latest_has_value desc,
                case
                    when {{ period_rank('c.period_level') }} >= {{ period_rank('d.cadence_level') }}
                        then {{ period_rank('c.period_level') }}
                    else 10 + {{ period_rank('c.period_level') }}
                end
        ) as preference
    from level_latest as c
    inner join (
        select
            metric_id,
            case cadence when 'monthly' then 'month' when 'quarterly' then 'quarter' else 'year' end
                as cadence_level
        from definitions
    ) as d using (metric_id)
),

series as (
    select
        c.*,
        {{ period_end('c.period_level', 'c.period_start') }} as period_end,
        row_number() over (
            partition by c.audience, c.metric_id order by c.period_start desc
        ) as recency
    from city as c
    inner join levels as l using (audience, metric_id, period_level)
    where l.preference = 1
),

window_periods as (
    -- how many periods of each level lie wholly inside each metric's baseline window
    select
        w.metric_id,
        w.period_level,
        count(distinct w.period_start) as expected_periods
    from (
        select
            d.metric_id,
            l.period_level,
            d.baseline_end,
            cast(date_trunc(l.period_level, m.month) as date) as period_start
        from definitions as d
        cross join (values ('month'), ('quarter'), ('year')) as l(period_level)
        cross join lateral (
            select unnest(generate_series(
                cast(d.baseline_start as timestamp),
                cast(d.baseline_end as timestamp),
                interval 1 month
            )) as month
        ) as m
        where date_trunc(l.period_level, m.month) >= d.baseline_start
    ) as w
    where {{ period_end('w.period_level', 'w.period_start') }} <= w.baseline_end
    group by w.metric_id, w.period_level
),

baseline_periods as (
    select
        s.audience,
        s.metric_id,
        s.period_level,
        avg(s.value) as baseline_value,
        count(s.value) as baseline_periods
    from series as s
    inner join definitions as d using (metric_id)
    where s.value is not null
        and s.period_start >= d.baseline_start
        and s.period_end <= d.baseline_end
    group by s.audience, s.metric_id, s.period_level
),

baseline as (
    -- a baseline only over the whole window: with a period of it partial, missing or not
    -- shown, there is none (no trend against part of a year)
    select
        b.audience,
        b.metric_id,
        case when b.baseline_periods = w.expected_periods then b.baseline_value end
            as baseline_value,
        b.baseline_periods
    from baseline_periods as b
    inner join window_periods as w using (metric_id, period_level)
),

dataset_through as (
    -- the last date each dataset's data runs to: the 5th for a final month delivered through it
    select provider, dataset, max(data_through) as data_through
    from {{ ref('int_dataset_months') }}
    group by provider, dataset
),

sources as (
    select
        m.metric_id,
        m.provider,
        m.dataset,
        p.freshness_status,
        p.data_status,
        coalesce(t.data_through, p.data_through) as data_through,
        m.has_period,
        p.freshness_status in ('late', 'overdue', 'never_delivered')
            or p.data_status in ('behind', 'far_behind', 'no_data') as late
    from {{ ref('int_metric_sources') }} as m
    left join {{ ref('provider_status') }} as p using (provider, dataset)
    left join dataset_through as t using (provider, dataset)
),

source_summary as (
    select
        metric_id,
        string_agg(provider || '/' || dataset, ', ' order by provider, dataset) as sources,
        -- the worst delivery status among the sources
        arg_max(
            freshness_status,
            case freshness_status
                when 'never_delivered' then 4 when 'overdue' then 3 when 'late' then 2
                when 'on_time' then 1 else 0
            end
        ) as sources_freshness,
        min(data_through) filter (where has_period) as data_through,
        bool_or(coalesce(late, true)) as stale,
        string_agg(
            provider || '/' || dataset || ' ' || freshness_status || ', data ' || data_status,
            '; ' order by provider, dataset
        ) filter (where late) as stale_sources
    from sources
    group by metric_id
),

latest as (
    select * from series where recency = 1
),

previous as (
    select * from series where recency = 2
),

combined as (
    select
        a.audience,
        d.* exclude (target_value),
        d.target_value as declared_target_value,
        a.min_cell_size,
        l.period_level as latest_period_level,
        l.period_start as latest_period,
        l.value as latest_value,
        l.status as latest_status,
        p.period_start as previous_period,
        p.value as previous_value,
        p.status as previous_status,
        b.baseline_value,
        coalesce(b.baseline_periods, 0) as baseline_periods,
        coalesce(d.target_value, b.baseline_value * (1 + d.target_change_pct / 100))
            as resolved_target,
        s.sources,
        s.sources_freshness,
        s.data_through,
        s.stale,
        s.stale_sources
    from metric_audiences as a
    inner join definitions as d using (metric_id)
    left join latest as l using (audience, metric_id)
    left join previous as p using (audience, metric_id)
    left join baseline as b using (audience, metric_id)
    left join source_summary as s using (metric_id)
)

select
    audience,
    metric_id,
    title,
    dimension_title as dimension,
    goal,
    indicator,
    definition,
    unit,
    numerator_title as numerator,
    denominator_title as denominator,
    direction,
    cadence,
    providers,
    sources,
    owner,
    owner_organisation,
    owner_role,
    case when owner_organisation is null or owner_role is null then 'unowned' else 'owned' end
        as owner_status,
    privacy_key,
    min_cell_size,
    latest_period_level,
    latest_period,
    latest_value,
    latest_status,
    previous_period,
    previous_value,
    previous_status,
    round(latest_value - previous_value, 3) as change,
    case
        when previous_value <> 0
            then round(100 * (latest_value - previous_value) / abs(previous_value), 1)
    end as change_pct,
    baseline_start,
    baseline_end,
    round(baseline_value, 3) as baseline_value,
    baseline_periods,
    case
        when baseline_value <> 0
            then round(100 * (latest_value - baseline_value) / abs(baseline_value), 1)
    end as change_vs_baseline_pct,
    case
        when latest_value is null then 'no_value'
        when baseline_value is null then 'no_baseline'
        when abs(latest_value - baseline_value) <= 0.05 * abs(baseline_value) then 'steady'
        when (latest_value < baseline_value) = (direction = 'down_is_good') then 'improving'
        else 'worsening'
    end as trend,
    round(resolved_target, 3) as target_value,
    target_by,
    case
        when declared_target_value is null and target_change_pct is null then 'no_target'
        when latest_value is null or resolved_target is null then 'no_value'
        when direction = 'down_is_good' and latest_value <= resolved_target then 'met'
        when direction = 'up_is_good' and latest_value >= resolved_target then 'met'
        else 'not_met'
    end as target_status,
    data_through,
    sources_freshness,
    case when coalesce(stale, true) then 'stale' else 'fresh' end as freshness_status,
    stale_sources,
    display_order
from combined
order by audience, display_order
