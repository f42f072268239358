select geo_level, geo_code, name, parent_level, parent_code, boundary
from {{ source('city', 'geography') }}
