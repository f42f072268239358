{#- Every geography with the district and city it rolls up to: beat -> district -> city. A zone
    (which may cut across districts) rolls up to the city only. -#}
with geographies as (
    select * from {{ ref('stg_city__geographies') }}
)

select
    g.geo_level,
    g.geo_code,
    g.name,
    case g.geo_level
        when 'beat' then g.parent_code
        when 'district' then g.geo_code
    end as district_code,
    case g.geo_level
        when 'beat' then d.parent_code
        when 'district' then g.parent_code
        when 'zone' then g.parent_code
        else g.geo_code
    end as city_code
from geographies as g
left join geographies as d
    on g.geo_level = 'beat' and d.geo_level = 'district' and d.geo_code = g.parent_code
