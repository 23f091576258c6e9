-- noqa: disable=LT02,LT05
-- (Jinja that writes SQL for two engines: sqlfluff lays it out as if it were one query)
{#-
  On an engine whose catalogue lives in its session (Sail), what is in the lake is named anew in every run
  (on-run-start). The Python side says what (orchestration/dbt/sail.py, environment SHUCANG_SAIL_CATALOG):
  {"schemas": […], "sources": {"std.tax_monthly": [uri, version]}, "tables": {"main.theme_x": [uri, ddl]}}.
  A source becomes a view of its lake Delta table at the version the run pins (the table registered as
  `<source>__lake`; a view over a `delta.`path`` cannot be read back in Sail 0.7, the path loses its quotes),
  so models read it by its usual name; an incremental model already in the lake is registered as a table at its
  location, with its columns (Sail knows a table's columns only as registered), so it finds itself.
  DuckDB keeps its own catalogue in the warehouse file: nothing to do.
-#}
{% macro lake_catalog() -%}
    {{ return(adapter.dispatch('lake_catalog')()) }}
{%- endmacro %}

{% macro default__lake_catalog() -%}
{%- endmacro %}

{% macro sail_catalog() -%}
    {%- set given = env_var('SHUCANG_SAIL_CATALOG', '') -%}
    {%- if not given -%}
        {{ exceptions.raise_compiler_error(
            "target sail: SHUCANG_SAIL_CATALOG is not set — run dbt on Sail through "
            ~ "`python -m orchestration.cli dbt --target sail …` or the Dagster asset, which name the lake's tables"
        ) }}
    {%- endif -%}
    {{ return(fromjson(given)) }}
{%- endmacro %}

{% macro sail__lake_catalog() -%}
    {%- if execute -%}
        {%- set catalog = sail_catalog() -%}
        {%- for schema in catalog['schemas'] -%}
            {% do run_query('create schema if not exists ' ~ schema) %}
        {%- endfor -%}
        {%- for name, source in catalog['sources'].items() -%}
            {% do run_query(sail_register(name ~ '__lake', source[0], 'using delta')) %}
            {%- set version = '' if source[1] is none else ' version as of ' ~ source[1] -%}
            {% do run_query('create or replace view ' ~ name ~ ' as select * from ' ~ name ~ '__lake' ~ version) %}
        {%- endfor -%}
        {#- a full refresh creates every incremental model anew, with the columns its SQL gives now -#}
        {%- for name, table in catalog['tables'].items() if not flags.FULL_REFRESH -%}
            {% do run_query(sail_register(name, table[0], table[1])) %}
            {#- dbt listed the schema's relations before this hook: it learns of the table here -#}
            {%- set schema, identifier = name.split('.') -%}
            {% do adapter.cache_added(api.Relation.create(schema=schema, identifier=identifier, type='table')) %}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{% macro sail_register(name, uri, columns) -%}
    create table if not exists {{ name }} {{ columns }} location '{{ uri }}'
{%- endmacro %}

{#-
  Where Sail writes a model or seed: the lake zone of its folder (base, theme, topic; seeds, the parameters, under
  base/parameters/), as Delta. LAKE_ROOT is the lake the run reads (set by the Dagster asset and the CLI).
-#}
{% macro sail__location_clause() -%}
    {%- set root = env_var('LAKE_ROOT').rstrip('/') -%}
    {%- if model.resource_type == 'seed' -%}
    location '{{ root }}/base/parameters/{{ model.alias }}'
    {%- else -%}
    location '{{ root }}/{{ model.fqn[1] }}/{{ model.alias }}'
    {%- endif -%}
{%- endmacro %}

{% macro sail__file_format_clause() -%}
    using delta
{%- endmacro %}

{#-
  A table Sail creates anew at a location that already holds one takes the new columns and types
  (overwriteSchema): without it Sail 0.7 writes the new rows into the old columns, cast to their old types — a
  model whose types changed would land silently wrong.
-#}
{% macro sail__options_clause() -%}
    {%- set options = {'overwriteSchema': 'true'} -%}
    {%- do options.update(config.get('options') or {}) -%}
    options (
        {%- for name, value in options.items() -%}
        {{ name }} '{{ value }}'{{ ', ' if not loop.last }}
        {%- endfor -%}
    )
{%- endmacro %}

{#-
  After a run on Sail: the columns of every model and seed the run left in the catalogue — the staging views
  included, which the lake does not hold — as one Delta table in the lake, ops/model_schemas (schema, name,
  column, data_type, position). The Dagster asset derives the models' column lineage from it.
-#}
{% macro record_schemas() -%}
    {{ return(adapter.dispatch('record_schemas')()) }}
{%- endmacro %}

{% macro default__record_schemas() -%}
{%- endmacro %}

{% macro sail__record_schemas() -%}
    {%- if execute -%}
        {%- set rows = [] -%}
        {%- for node in graph.nodes.values() if node.resource_type in ('model', 'seed') -%}
            {%- set relation = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) -%}
            {%- if relation is not none -%}
                {%- for column in adapter.get_columns_in_relation(relation) -%}
                    {%- do rows.append("('" ~ node.schema ~ "', '" ~ node.alias ~ "', '" ~ column.name ~ "', '"
                        ~ column.dtype ~ "', " ~ loop.index ~ ")") -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if rows -%}
            {% do run_query(
                "create or replace table main.__model_schemas using delta location '"
                ~ env_var('LAKE_ROOT').rstrip('/') ~ "/ops/model_schemas' as select * from values "
                ~ rows | join(', ') ~ " as t (`schema`, name, `column`, data_type, position)"
            ) %}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
