{#- How much of each metric an audience gets to see: the suppression report of the release.
    Counts of cells only: which cells were hidden, and why, is never part of a release.
    Beside them, how many rows of the metric's numerator were placed in no beat (and so are in
    no cell): a small count is withheld like a small cell, and the rows that did find a beat are
    never shown, since with the published cells they would give away suppressed ones. And why a
    metric's cells were not protected the usual way, if they were not (withheld from this
    release, say). -#}
with report as (
    select
        audience,
        metric_id,
        count(*) as cells,
        count(*) filter (where status = 'published') as published,
        count(*) filter (where status = 'unreliable') as unreliable,
        count(*) filter (where status = 'suppressed') as suppressed,
        count(*) filter (where status = 'missing') as missing,
        round(count(*) filter (where status = 'suppressed') / count(*), 3) as suppressed_share,
        list(distinct geo_level || ' by ' || period_level order by geo_level || ' by ' || period_level)
            as levels_shown
    from {{ ref('metric_values') }}
    group by audience, metric_id
),

unplaced as (
    select d.metric_id, cast(sum(p.rows_unplaced) as bigint) as rows_unplaced
    from {{ source('placement', 'placement') }} as p
    inner join {{ ref('stg_catalog__metric_definitions') }} as d
        on p.measure_id = d.numerator_measure
    group by d.metric_id
),

fallbacks as (
    select d.metric_id, f.audience, string_agg(distinct f.fallback, '; ' order by f.fallback)
        as protection_fallback
    from {{ source('protection', 'fallbacks') }} as f
    inner join {{ ref('stg_catalog__metric_definitions') }} as d
        on f.measure_id in (d.numerator_measure, d.denominator_measure)
    group by d.metric_id, f.audience
)

select
    r.*,
    case
        when u.rows_unplaced = 0 or u.rows_unplaced >= pr.min_cell_size then u.rows_unplaced
    end as rows_unplaced,
    coalesce(u.rows_unplaced > 0 and u.rows_unplaced < pr.min_cell_size, false)
        as rows_unplaced_withheld,
    f.protection_fallback
from report as r
left join unplaced as u on u.metric_id = r.metric_id
left join fallbacks as f on f.metric_id = r.metric_id and f.audience = r.audience
left join {{ ref('stg_catalog__privacy_rules') }} as pr
    on pr.metric_id = r.metric_id and pr.audience = r.audience
order by r.audience, r.metric_id
