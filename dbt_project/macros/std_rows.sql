-- noqa: disable=LT02
-- (the Sail variant writes its column list with Jinja: sqlfluff lays it out as if it were one query)
{#-
  A std dataset's rows as the models read them: the std table, plus the rows entity resolution recovered
  (source ops.resolved_<dataset>: records quarantined only because the enterprise's credit code was missing or
  wrong, or the registration's name, matched to a known enterprise and conformed with the dataset's rules —
  quality/resolution.py). A resolved row that takes the place of a std row with the same key (a correction
  whose original std holds) names it, and that std row is left out. Used by the staging models.
-#}
{% macro std_rows(dataset) -%}
    {{ return(adapter.dispatch('std_rows')(dataset)) }}
{%- endmacro %}

{% macro default__std_rows(dataset) -%}
    (
        select s.*
        from {{ source('std', dataset) }} as s
        where not exists (
            select 1
            from {{ source('ops', 'resolved_' ~ dataset) }} as r
            where r._displaces_file = s._source_file and r._displaces_row = s._row_number
        )
        union all by name
        select r.* exclude (_resolution_method, _resolution_confidence, _displaces_file, _displaces_row)
        from {{ source('ops', 'resolved_' ~ dataset) }} as r
    )
{%- endmacro %}

{#- Spark SQL has neither `union all by name` nor `* exclude`: the std table's columns are named, each taken from
    the resolved rows where they have it (else null, as by name). -#}
{% macro sail__std_rows(dataset) -%}
    {%- set std, resolved = source('std', dataset), source('ops', 'resolved_' ~ dataset) -%}
    {%- if execute -%}
        {%- set columns = run_query('select * from ' ~ std ~ ' limit 0').column_names -%}
        {%- set have = run_query('select * from ' ~ resolved ~ ' limit 0').column_names -%}
    {%- else -%}
        {%- set columns, have = [], [] -%}
    {%- endif -%}
    (
        select s.*
        from {{ std }} as s
        where not exists (
            select 1
            from {{ resolved }} as r
            where r._displaces_file = s._source_file and r._displaces_row = s._row_number
        )
        union all
        select
        {%- for c in columns %}
            {% if c in have %}r.{{ c }}{% else %}null{% endif %} as {{ c }}{{ ',' if not loop.last }}
        {%- endfor %}
        from {{ resolved }} as r
    )
{%- endmacro %}
