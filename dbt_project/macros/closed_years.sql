{#-
  The years that are over in the data: every year up to the latest whose December has been delivered — a
  later month means the year before is over too. An annual evaluation (亩均) judges only these: a year under way
  (January's filings of the next year just in) is not evaluated on a month of data.
-#}
{% macro closed_years(column) %}
{{ column }} <= (
    select
        max(
            cast(substr(period, 1, 4) as integer) - case when substr(period, 6, 2) = '12' then 0 else 1 end
        )
    from {{ ref('theme_operations_monthly') }}
)
{% endmacro %}
