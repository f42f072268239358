{#- Residents per year, geography of the current beat map and breakdown, for every year a
    metric has data. A year the city has not published an estimate for yet uses the latest
    earlier estimate (population_year says which). -#}
with population as (
    select p.*
    from {{ ref('stg_city__populations') }} as p
    inner join {{ ref('int_geography_crosswalk') }} as g using (geo_level, geo_code)
),

years as (
    select distinct year(period_start) as year from {{ ref('int_period_spine') }}
    union
    select distinct year from population
),

candidates as (
    select
        y.year,
        p.geo_level,
        p.geo_code,
        p.breakdown,
        p.population,
        p.year as population_year,
        row_number() over (
            partition by y.year, p.geo_level, p.geo_code, p.breakdown order by p.year desc
        ) as recency
    from years as y
    inner join population as p on p.year <= y.year
)

select year, geo_level, geo_code, breakdown, population, population_year
from candidates
where recency = 1
