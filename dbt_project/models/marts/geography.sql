select geo_level, geo_code, name, parent_level, parent_code, boundary
from {{ ref('stg_city__geographies') }}
order by
    case geo_level when 'city' then 1 when 'district' then 2 when 'zone' then 3 else 4 end,
    geo_code
