select * from {{ source('catalog', 'datasets') }}
