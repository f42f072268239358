{#- One row per CS360 metric and audience: what it is, who owns it, and its latest city-wide
    monthly value as that audience sees it. -#}
with definitions as (
    select * from {{ ref('stg_catalog__metric_definitions') }}
),

rules as (
    select * from {{ ref('stg_catalog__privacy_rules') }}
),

city_months as (
    select audience, metric_id, period_start, value, status
    from {{ ref('metric_values') }}
    where geo_level = 'city' and period_level = 'month' and breakdown = 'total'
),

latest as (
    select audience, metric_id, max(period_start) as latest_period
    from city_months
    group by audience, metric_id
)

select
    r.audience,
    d.metric_id,
    d.title,
    d.dimension_title as dimension,
    d.goal,
    d.indicator,
    d.definition,
    d.unit,
    d.direction,
    d.providers,
    d.owner_organisation || ' (' || d.owner_role || ')' as owner,
    d.cadence,
    r.min_cell_size,
    l.latest_period,
    c.value as latest_value,
    c.status as latest_status,
    d.display_order
from definitions as d
inner join rules as r on r.metric_id = d.metric_id
left join latest as l on l.metric_id = d.metric_id and l.audience = r.audience
left join city_months as c
    on c.metric_id = d.metric_id
    and c.audience = r.audience
    and c.period_start = l.latest_period
order by r.audience, d.display_order
