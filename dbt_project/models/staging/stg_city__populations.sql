select year, geo_level, geo_code, breakdown, population
from {{ source('city', 'population') }}
