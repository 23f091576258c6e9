-- noqa: disable=LT02,LT05
-- (Jinja that writes SQL for two engines: sqlfluff lays it out as if it were one query)
{#-
  The SQL that differs between the engines the project runs on — DuckDB (the default) and Sail (Spark SQL) —
  one macro each, with one implementation per adapter. Models use these instead of an engine's own spelling.
-#}

{#- The text type: DuckDB's varchar; Spark SQL's varchar needs a length, its unbounded text is string. -#}
{% macro string_type() -%}
    {{ return(adapter.dispatch('string_type')()) }}
{%- endmacro %}

{% macro default__string_type() -%}
    varchar
{%- endmacro %}

{% macro sail__string_type() -%}
    string
{%- endmacro %}

{#- dbt's cast (contracts cast null to each declared column type): the yml declares DuckDB's type names. -#}
{% macro sail__cast(field, type) -%}
    cast({{ field }} as {{ 'string' if type | lower | trim == 'varchar' else type }})
{%- endmacro %}

{#- Values joined into one text in a given order, nulls skipped, null when there is none. -#}
{% macro ordered_string_agg(expr, separator, order_by, distinct=false) -%}
    {{ return(adapter.dispatch('ordered_string_agg')(expr, separator, order_by, distinct)) }}
{%- endmacro %}

{% macro default__ordered_string_agg(expr, separator, order_by, distinct) -%}
    string_agg({{ 'distinct ' if distinct }}{{ expr }}, {{ separator }} order by {{ order_by }})
{%- endmacro %}

{% macro sail__ordered_string_agg(expr, separator, order_by, distinct) -%}
    listagg({{ 'distinct ' if distinct }}{{ expr }}, {{ separator }}) within group (order by {{ order_by }})
{%- endmacro %}

{#- The month 'YYYY-MM' `months` months after (before, when negative) the month 'YYYY-MM' `period`. -#}
{% macro shift_month(period, months) -%}
    {{ return(adapter.dispatch('shift_month')(period, months)) }}
{%- endmacro %}

{% macro default__shift_month(period, months) -%}
    strftime(cast({{ period }} || '-01' as date) + interval ({{ months }}) month, '%Y-%m')
{%- endmacro %}

{% macro sail__shift_month(period, months) -%}
    date_format(add_months(cast({{ period }} || '-01' as date), {{ months }}), 'yyyy-MM')
{%- endmacro %}

{#-
  Seed rows on Sail: dbt-spark binds each value as text, and its session connection writes a missing value as
  the text 'None' (which no date or number cast takes). Values are written as literals here, a missing one as
  null; the seed's column types apply as on every adapter.
-#}
{% macro sail__load_csv_rows(model, agate_table) %}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(get_batch_size()) -%}
        {%- set sql -%}
            insert into {{ this.render() }} values
            {% for row in chunk -%}
                ({%- for col_name in agate_table.column_names -%}
                    {%- set type = column_override.get(col_name, adapter.convert_type(agate_table, loop.index0)) -%}
                    {%- set value = row[loop.index0] -%}
                    {%- if value is none -%}
                        cast(null as {{ type }})
                    {%- else -%}
                        cast('{{ (value | string).replace("\\", "\\\\").replace("'", "\\'") }}' as {{ type }})
                    {%- endif -%}
                    {{- ', ' if not loop.last -}}
                {%- endfor -%}){{ ',' if not loop.last }}
            {% endfor %}
        {%- endset -%}
        {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
        {%- if loop.first -%}{%- do statements.append(sql) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(statements[0]) }}
{% endmacro %}

{#- A seed's table on Sail is replaced whole (its Delta location keeps its history); dbt-spark creates it anew. -#}
{% macro sail__create_csv_table(model, agate_table) %}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set sql -%}
        create or replace table {{ this.render() }} (
            {%- for col_name in agate_table.column_names -%}
                {%- set type = column_override.get(col_name, adapter.convert_type(agate_table, loop.index0)) -%}
                {{ adapter.quote_seed_column(col_name | string, model['config'].get('quote_columns', None)) }} {{ type }}
                {{- ', ' if not loop.last -}}
            {%- endfor -%}
        )
        {{ file_format_clause() }}
        {{ options_clause() }}
        {{ location_clause() }}
    {%- endset -%}
    {%- call statement('_') -%}{{ sql }}{%- endcall -%}
    {{ return(sql) }}
{% endmacro %}
