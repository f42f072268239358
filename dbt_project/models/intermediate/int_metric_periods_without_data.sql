{#- The rows metric_values shows as `missing` because nothing was delivered for the period: every
    geography and breakdown a metric has at a period level, for each period of that level in
    the metric's span that has no cells at all (a month nobody delivered, such as a school's
    July, is missing, never a zero). -#}
with cells as (
    select * from {{ ref('int_metric_cells_joined_to_denominators') }}
),

series as (
    select distinct audience, metric_id, period_level, geo_level, geo_code, breakdown from cells
),

present as (
    select distinct audience, metric_id, period_level, period_start from cells
),

periods as (
    select metric_id, period_level, period_start from {{ ref('int_metric_periods') }}
)

select
    s.audience,
    s.metric_id,
    s.period_level,
    p.period_start,
    s.geo_level,
    s.geo_code,
    s.breakdown
from series as s
inner join periods as p using (metric_id, period_level)
anti join present as x using (audience, metric_id, period_level, period_start)
