{#- For each metric, every period of the spine from the first month its data covers: whether any
    of the period's months was delivered, and whether the period is complete. A period is
    incomplete when one of its months (up to the spine's last month) was not delivered by a
    source dataset although that dataset delivers in that calendar month; a dataset's
    no-delivery months (a school's July) do not make a period incomplete. -#}
with sources as (
    select * from {{ ref('int_metric_sources') }} where has_period
),

delivered as (
    select * from {{ ref('int_dataset_months') }}
),

spine as (
    select * from {{ ref('int_period_spine') }}
),

metric_start as (
    select s.metric_id, min(d.month) as first_month
    from sources as s
    inner join delivered as d using (provider, dataset)
    group by s.metric_id
),

metric_months as (
    select
        m.metric_id,
        sp.period_start as month,
        bool_and(d.month is not null) as delivered,
        bool_and(d.month is not null or list_contains(s.no_delivery_months, month(sp.period_start)))
            as accounted_for
    from metric_start as m
    inner join spine as sp
        on sp.period_level = 'month' and sp.period_start >= m.first_month
    inner join sources as s on s.metric_id = m.metric_id
    left join delivered as d
        on d.provider = s.provider and d.dataset = s.dataset and d.month = sp.period_start
    group by m.metric_id, sp.period_start
)

select
    p.period_level,
    p.period_start,
    p.period_end,
    mm.metric_id,
    bool_or(mm.delivered) as has_delivery,
    bool_and(mm.accounted_for) as complete,
    count(*) filter (where not mm.accounted_for) as months_not_delivered
from spine as p
inner join metric_months as mm
    on mm.month between p.period_start and p.period_end
group by p.period_level, p.period_start, p.period_end, mm.metric_id
