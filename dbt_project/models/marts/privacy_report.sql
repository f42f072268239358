{#- How much of each metric an audience gets to see: the suppression report of the release.
    Counts of cells only: which cells were hidden, and why, is never part of a release. -#}
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
order by audience, metric_id
