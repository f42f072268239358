{#- The published metric cube, one copy per audience. A value is shown only when every count
    it rests on is publishable; a suppressed count suppresses every value derived from it, and a
    rate or percent over too small a denominator is not shown either. A period none of whose
    data was delivered, or one with an undelivered month inside it, is missing, never a zero. -#}
with joined as (
    select * from {{ ref('int_metric_cells_joined_to_denominators') }}
),

release as (
    select release_id from {{ ref('stg_catalog__releases') }}
),

statused as (
    select
        *,
        case
            when not period_complete then 'missing'
            -- no residents to divide by (population not delivered for it): no rate at all,
            -- whatever the numerator; suppressed numerators hold no count, so none is shown
            when unit = 'rate_per_1000' and denominator is null then 'missing'
            when numerator_suppressed or denominator_suppressed then 'suppressed'
            -- a median needs at least k contributing records
            when unit = 'minutes' and numerator_n < min_cell_size then 'suppressed'
            when needs_denominator and coalesce(denominator, 0) = 0 then 'missing'
            when needs_denominator and denominator < min_denominator then 'suppressed'
            when needs_denominator and numerator_n < flag_unreliable_below then 'unreliable'
            else 'published'
        end as status
    from joined
)

select
    s.audience,
    s.metric_id,
    s.period_level,
    s.period_start,
    s.geo_level,
    s.geo_code,
    s.breakdown,
    case
        when s.status in ('suppressed', 'missing') then null
        when s.needs_denominator then round(s.numerator_value * s.scale / s.denominator, 3)
        else round(s.numerator_value, 3)
    end as value,
    case when s.status = 'suppressed' or not s.period_complete then null else s.numerator_n end
        as numerator,
    case when s.status = 'suppressed' or not s.period_complete then null else s.denominator end
        as denominator,
    s.status,
    r.release_id
from statused as s
cross join release as r
union all
select
    m.audience,
    m.metric_id,
    m.period_level,
    m.period_start,
    m.geo_level,
    m.geo_code,
    m.breakdown,
    cast(null as double) as value,
    cast(null as bigint) as numerator,
    cast(null as bigint) as denominator,
    'missing' as status,
    r.release_id
from {{ ref('int_metric_periods_without_data') }} as m
cross join release as r
order by audience, metric_id, period_level, period_start, geo_level, geo_code, breakdown
