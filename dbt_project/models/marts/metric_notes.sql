{#- The PST's notes on its metrics, for the audiences the metric is published to: what a reader
    should know about some months before reading their numbers. -#}
select n.audience, n.metric_id, n.note_order, n.period_from, n.period_to, n.note
from {{ ref('stg_catalog__metric_notes') }} as n
inner join {{ ref('stg_catalog__metric_definitions') }} as d
    on d.metric_id = n.metric_id and list_contains(d.audiences, n.audience)
order by n.audience, d.display_order, n.note_order
