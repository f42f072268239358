{#- The published metric cube, one copy per audience. A value is shown only when every count
    it rests on is publishable; a suppressed count suppresses every value derived from it, and a
    rate or percent over too small a denominator is not shown either. A period none of whose
    data was delivered, or one with an undelivered month inside it, is missing, never a zero;
    so is a period before a look-back measure has its history (history_months).

    Every row says whether its period is complete (period_complete: over, and delivered whole
    by every dataset the metric reads) and how far its data runs (data_through): a final month
    delivered through the 5th, its quarter and year, a year whose data starts in December or
    is not over yet are partial. Partial periods are published, marked, and never feed the
    catalog's trends, baselines or targets. -#}
with joined as (
    select
        j.* exclude (period_complete),
        j.period_complete as no_month_missing,
        coalesce(p.has_history, true) as has_history,
        -- no count at all for a period with a month missing or without its history
        not j.period_complete or not coalesce(p.has_history, true) as withheld,
        coalesce(p.period_complete, false) as period_complete,
        p.data_through
    from {{ ref('int_metric_cells_joined_to_denominators') }} as j
    left join {{ ref('int_metric_periods') }} as p
        on p.metric_id = j.metric_id
        and p.period_level = j.period_level
        and p.period_start = j.period_start
),

release as (
    select release_id from {{ ref('stg_catalog__releases') }}
),

statused as (
    select
        *,
        case
            when not no_month_missing then 'missing'
            -- a look-back measure without its history would undercount: no value, not a low one
            when not has_history then 'missing'
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
    case when s.status = 'suppressed' or s.withheld then null else s.numerator_n end
        as numerator,
    case when s.status = 'suppressed' or s.withheld then null else s.denominator end
        as denominator,
    s.status,
    s.period_complete,
    s.data_through,
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
    coalesce(p.period_complete, false) as period_complete,
    p.data_through,
    r.release_id
from {{ ref('int_metric_periods_without_data') }} as m
left join {{ ref('int_metric_periods') }} as p
    on p.metric_id = m.metric_id
    and p.period_level = m.period_level
    and p.period_start = m.period_start
cross join release as r
order by audience, metric_id, period_level, period_start, geo_level, geo_code, breakdown
