{#- For each metric, every period of the spine from the first month its data covers: whether any
    of the period's months was delivered, whether the period is complete, and how far its data
    runs.

    - complete: no month of the period (up to the spine's last month) is undelivered by a
      source dataset that delivers in that calendar month; a dataset's no-delivery months (a
      school's July) do not count. An incomplete period is `missing` in metric_values.
    - period_complete: the period is over and delivered whole: every one of its months lies in
      the metric's span, is complete, and every source dataset's data runs to the month's last
      day. A month delivered through the 5th, the quarter and year around it, a year whose
      first months precede the data, or a year not yet over are partial: shown, marked, and
      never used for a trend, baseline or target.
    - data_through: the last date the period's data runs to (the earliest among the metric's
      datasets for each month); the period's last day when it is complete.
    - has_history: the metric's look-back (history_months, e.g. an offender's incidents in the
      12 months before) is covered: the period starts at least that many months after the
      first month of every dataset the metric reads (always, for a measure with no look-back).
      Without it the period is `missing`. -#}
with sources as (
    select * from {{ ref('int_metric_sources') }} where has_period
),

delivered as (
    select * from {{ ref('int_dataset_months') }}
),

spine as (
    select * from {{ ref('int_period_spine') }}
),

definitions as (
    select metric_id, coalesce(history_months, 0) as history_months
    from {{ ref('stg_catalog__metric_definitions') }}
),

dataset_start as (
    select provider, dataset, min(month) as first_month from delivered group by provider, dataset
),

metric_start as (
    select
        s.metric_id,
        min(d.first_month) as first_month,
        -- the look-back needs history in every dataset the metric reads
        max(d.first_month) as last_first_month
    from sources as s
    inner join dataset_start as d using (provider, dataset)
    group by s.metric_id
),

metric_months as (
    select
        m.metric_id,
        sp.period_start as month,
        bool_and(d.month is not null) as delivered,
        bool_and(d.month is not null or list_contains(s.no_delivery_months, month(sp.period_start)))
            as accounted_for,
        -- how far the month runs in the dataset that runs least far (a month a dataset never
        -- delivers, such as a school's July, does not shorten it)
        min(
            case
                when d.month is not null then d.data_through
                when list_contains(s.no_delivery_months, month(sp.period_start))
                    then last_day(sp.period_start)
            end
        ) as data_through
    from metric_start as m
    inner join spine as sp
        on sp.period_level = 'month' and sp.period_start >= m.first_month
    inner join sources as s on s.metric_id = m.metric_id
    left join delivered as d
        on d.provider = s.provider and d.dataset = s.dataset and d.month = sp.period_start
    group by m.metric_id, sp.period_start
),

periods as (
    select
        p.period_level,
        p.period_start,
        p.period_end,
        mm.metric_id,
        bool_or(mm.delivered) as has_delivery,
        bool_and(mm.accounted_for) as complete,
        count(*) filter (where not mm.accounted_for) as months_not_delivered,
        count(*) as months_in_span,
        bool_and(mm.accounted_for and mm.data_through >= last_day(mm.month)) as months_whole,
        max(mm.data_through) as data_through
    from spine as p
    inner join metric_months as mm
        on mm.month between p.period_start and p.period_end
    group by p.period_level, p.period_start, p.period_end, mm.metric_id
)

select
    p.period_level,
    p.period_start,
    p.period_end,
    p.metric_id,
    p.has_delivery,
    p.complete,
    p.months_not_delivered,
    p.complete
    and p.months_whole
    and p.months_in_span = case p.period_level when 'month' then 1 when 'quarter' then 3 else 12 end
    and p.period_end <= {{ as_of_date() }} as period_complete,
    cast(p.data_through as date) as data_through,
    d.history_months = 0 or p.period_start >= cast(
        s.last_first_month + to_months(cast(d.history_months as integer)) as date
    ) as has_history
from periods as p
inner join metric_start as s using (metric_id)
inner join definitions as d using (metric_id)
