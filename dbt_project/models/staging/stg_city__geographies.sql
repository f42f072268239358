select geo_level, geo_code, name, parent_level, parent_code
from {{ source('city', 'geography') }}
