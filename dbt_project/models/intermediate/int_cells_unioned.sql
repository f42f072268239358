{#- Every provider's cells in one relation, so metrics can combine providers. -#}
{% set providers = ['police', 'school', 'hospital', 'probation', 'survey'] %}
{% for provider in providers %}
select * from {{ ref('stg_' ~ provider ~ '__cells') }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
