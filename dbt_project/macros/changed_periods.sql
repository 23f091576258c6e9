{#-
  The periods an incremental build replaces: those the run's std inputs changed since the model was last
  built. The Dagster asset passes them in the environment variable SHUCANG_CHANGED (JSON; a var would
  change dbt's parse and cost a full re-parse per run) — {std dataset: [periods] or 'all'}, read from the
  std commits since the versions the model last read (a std build records the periods it rebuilt); by
  hand, `--vars '{shucang_changed: …}'` does the same. Renders a condition on `column`: `true` (every period) when the var is absent (a run outside
  Dagster, a reproduction with pins), or when any input changed as a whole or is not listed; `false` when
  no input changed; else `column in (…)`. `granularity` is the model's period: a monthly source's
  '2023-03' is the year '2023' of an annual model. `offsets` (monthly models): the months after a changed
  month whose rows change with it — [0, 1] for a month-on-month comparison.
-#}
{% macro changed_periods(column, sources, granularity='month', offsets=[0]) -%}
    {%- set given = env_var('SHUCANG_CHANGED', '') -%}
    {%- set changed = fromjson(given) if given else var('shucang_changed', none) -%}
    {%- set width = 7 if granularity == 'month' else 4 -%}
    {%- set ns = namespace(all=changed is not mapping, periods=[]) -%}
    {%- for source in sources if not ns.all -%}
        {%- set periods = changed.get(source, 'all') -%}
        {%- if periods is string -%}
            {%- set ns.all = true -%}
        {%- else -%}
            {%- for p in periods -%}
                {%- for k in (offsets if granularity == 'month' else [0]) -%}
                    {%- set n = (p[:4] | int) * 12 + (p[5:7] | int) - 1 + k -%}
                    {%- set shifted = '%04d-%02d' | format(n // 12, n % 12 + 1) -%}
                    {%- set ns.periods = ns.periods + [shifted if granularity == 'month' else p[:width]] -%}
                {%- endfor -%}
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
