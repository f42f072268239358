{#- The last day of a month, quarter or year that starts on `start`. -#}
{% macro period_end(level, start) -%}
    cast(
        {{ start }} + case {{ level }}
            when 'month' then interval 1 month
            when 'quarter' then interval 3 month
            else interval 1 year
        end - interval 1 day
        as date
    )
{%- endmacro %}

{#- Coarseness of a period level: month 1, quarter 2, year 3. -#}
{% macro period_rank(level) -%}
    case {{ level }} when 'month' then 1 when 'quarter' then 2 else 3 end
{%- endmacro %}
