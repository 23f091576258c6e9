-- 企业经营主题库（月）: revenue and tax (税务), metered electricity (电力, all supply accounts of the firm),
-- and the firm's own report of output, electricity and headcount (企业填报), per enterprise and month.
-- Incremental by month: a run replaces only the months its std inputs changed (macro changed_periods).

{% set inputs = ['tax_monthly', 'power_monthly', 'ent_production'] %}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{% if is_incremental() %}delete from {{ this }} where {{ changed_periods('period', "
        ~ inputs ~ ") }}{% endif %}"
) }}

with tax as (
    select
        uscc,
        period,
        {{ exact_sum('revenue_yuan') }} as revenue_yuan,
        {{ exact_sum('tax_paid_yuan') }} as tax_paid_yuan
    from {{ ref('stg_tax__monthly') }}
    {% if is_incremental() %}where {{ changed_periods('period', inputs) }}{% endif %}
    group by uscc, period
),

power as (
    select
        uscc,
        period,
        {{ exact_sum('consumption_kwh') }} as electricity_kwh,
        count(*) as supply_accounts
    from {{ ref('stg_power__monthly') }}
    where
        uscc is not null
        {% if is_incremental() %}and {{ changed_periods('period', inputs) }}{% endif %}
    group by uscc, period
),

production as (
    select
        uscc,
        period,
        output_value_yuan,
        output_qty,
        electricity_kwh as reported_electricity_kwh,
        employees
    from {{ ref('stg_ent__production') }}
    {% if is_incremental() %}where {{ changed_periods('period', inputs) }}{% endif %}
),

keys as (
    select
        uscc,
        period
    from tax
    union
    select
        uscc,
        period
    from power
    union
    select
        uscc,
        period
    from production
)

select
    k.uscc,
    k.period,
    t.revenue_yuan,
    t.tax_paid_yuan,
    p.electricity_kwh,
    p.supply_accounts,
    d.output_value_yuan,
    d.output_qty,
    d.reported_electricity_kwh,
    d.employees
from keys as k
left join tax as t on k.uscc = t.uscc and k.period = t.period
left join power as p on k.uscc = p.uscc and k.period = p.period
left join production as d on k.uscc = d.uscc and k.period = d.period
