{#-
  The periods an incremental build replaces: those the run's std inputs changed since the model was last
  built. The Dagster asset passes them as the var `shucang_changed` — {std dataset: [periods] or 'all'},
  read from the std commits since the versions the model last read (a std build records the periods it
  rebuilt). Renders a condition on `column`: `true` (every period) when the var is absent (a run outside
  Dagster, a reproduction with pins), or when any input changed as a whole or is not listed; `false` when
  no input changed; else `column in (…)`. `granularity` is the model's period: a monthly source's
  '2023-03' is the year '2023' of an annual model.
-#}
{% macro changed_periods(column, sources, granularity='month') -%}
    {%- set changed = var('shucang_changed', none) -%}
    {%- set width = 7 if granularity == 'month' else 4 -%}
    {%- set ns = namespace(all=changed is not mapping, periods=[]) -%}
    {%- for source in sources if not ns.all -%}
        {%- set periods = changed.get(source, 'all') -%}
        {%- if periods is string -%}
            {%- set ns.all = true -%}
        {%- else -%}
            {%- for p in periods -%}
                {%- set ns.periods = ns.periods + [p[:width]] -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if ns.all -%}
        true
    {%- elif ns.periods -%}
        {{ column }} in ('{{ ns.periods | unique | sort | join("', '") }}')
    {%- else -%}
        false
    {%- endif -%}
{%- endmacro %}
