{#-
  A std dataset's rows as the models read them: the std table, plus the rows entity resolution recovered
  (source ops.resolved_<dataset>: records quarantined only because the enterprise's credit code was missing or
  wrong, or the registration's name, matched to a known enterprise and conformed with the dataset's rules —
  quality/resolution.py). A resolved row that takes the place of a std row with the same key (a correction
  whose original std holds) names it, and that std row is left out. Used by the staging models.
-#}
{% macro std_rows(dataset) -%}
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
