{#- The scorecard's "today": the var as_of (the pipeline passes the run date, or CS360_AS_OF for
    a frozen clock), else the database's current date. -#}
{% macro as_of_date() -%}
    {%- if var('as_of', '') -%}
        cast('{{ var("as_of") }}' as date)
    {%- else -%}
        current_date
    {%- endif -%}
{%- endmacro %}

{#- dbt source freshness on the same clock as provider_status: the age of a dataset's latest
    delivery is measured from the start of the as_of day, so `dbt source freshness` and the
    pipeline's freshness checks give the same answer for the same date. -#}
{% macro duckdb__collect_freshness(source, loaded_at_field, filter) %}
    {% call statement('collect_freshness', fetch_result=True, auto_begin=False) -%}
        select
            max({{ loaded_at_field }}) as max_loaded_at,
            cast({{ as_of_date() }} as timestamp) as snapshotted_at
        from {{ source }}
        {% if filter %}
        where {{ filter }}
        {% endif %}
    {%- endcall %}
    {{ return(load_result('collect_freshness')) }}
{% endmacro %}
