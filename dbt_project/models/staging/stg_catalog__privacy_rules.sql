select * from {{ source('catalog', 'privacy_rules') }}
