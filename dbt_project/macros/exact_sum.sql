{#-
  Sum (or mean) of a floating-point column, the same whatever order the rows are added in: DuckDB adds
  DOUBLEs in parallel in no fixed order, so a plain sum() can differ in the last bits from run to run and
  a pinned re-run would not reproduce its results. Summing DECIMAL is exact; `scale` digits after the
  point are kept (std values carry at most 4).
-#}
{% macro exact_sum(expr, scale=6) -%}
    cast(sum(cast({{ expr }} as decimal(38, {{ scale }}))) as double)
{%- endmacro %}

{% macro exact_avg(expr, scale=6) -%}
    cast(avg(cast({{ expr }} as decimal(38, {{ scale }}))) as double)
{%- endmacro %}
