{#-
  Sum (or mean) of a floating-point column, the same whatever order the rows are added in: DuckDB adds
  DOUBLEs in parallel in no fixed order, so a plain sum() can differ in the last bits from run to run and
  a pinned re-run would not reproduce its results. Summing DECIMAL is exact; `scale` digits after the
  point are kept (std values carry at most 4).
-#}
{% macro exact_sum(expr, scale=6) -%}
    cast(sum(cast({{ expr }} as decimal(38, {{ scale }}))) as double)
{%- endmacro %}

{#- the exact sum over the count, divided as doubles: the same last bit on every engine (an avg of DECIMAL keeps
    an engine's own scale — DuckDB's and Spark's differ). -#}
{% macro exact_avg(expr, scale=6) -%}
    ({{ exact_sum(expr, scale) }} / count({{ expr }}))
{%- endmacro %}
