{#- Use the folder's schema as given (staging, intermediate, marts) instead of prefixing it
    with the target schema, so analysts see the same names in every environment. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
