{#- One row per metric, audience and cell: the numerator cell with its denominator (residents
    of the same geography in that calendar year, or another measure's cell with the same key and
    audience), the privacy rule the metric resolves to for that audience, and whether every
    month of the period was delivered. Only the audiences the metric is published to. -#}
with definitions as (
    select * from {{ ref('stg_catalog__metric_definitions') }}
),

cells as (
    select * from {{ ref('stg_privacy__cells') }}
),

population as (
    select * from {{ ref('int_population_denominators') }}
),

periods as (
    select * from {{ ref('int_metric_periods') }}
),

rules as (
    select * from {{ ref('stg_catalog__privacy_rules') }}
)

select
    d.metric_id,
    num.audience,
    d.unit,
    d.scale,
    num.period_level,
    num.period_start,
    num.geo_level,
    num.geo_code,
    num.breakdown,
    num.n as numerator_n,
    num.value as numerator_value,
    num.suppressed as numerator_suppressed,
    case
        when d.per_population then pop.population
        when d.denominator_measure is not null then den.n
    end as denominator,
    coalesce(den.suppressed, false) as denominator_suppressed,
    d.per_population or d.denominator_measure is not null as needs_denominator,
    r.min_cell_size,
    r.flag_unreliable_below,
    r.min_denominator,
    coalesce(pc.complete, true) as period_complete
from definitions as d
inner join cells as num
    on num.measure_id = d.numerator_measure
    and list_contains(d.audiences, num.audience)
inner join rules as r
    on r.metric_id = d.metric_id and r.audience = num.audience
left join periods as pc
    on pc.metric_id = d.metric_id
    and pc.period_level = num.period_level
    and pc.period_start = num.period_start
left join population as pop
    on d.per_population
    and pop.year = year(num.period_start)
    and pop.geo_level = num.geo_level
    and pop.geo_code = num.geo_code
    and pop.breakdown = num.breakdown
left join cells as den
    on den.measure_id = d.denominator_measure
    and den.audience = num.audience
    and den.period_level = num.period_level
    and den.period_start = num.period_start
    and den.geo_level = num.geo_level
    and den.geo_code = num.geo_code
    and den.breakdown = num.breakdown
