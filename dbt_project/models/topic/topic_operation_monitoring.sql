-- 企业运行监测: monthly output, electricity and employment per enterprise with month-on-month change and
-- anomaly flags. Thresholds are variables (dbt_project.yml), not code.
-- Incremental by month: a change of month M rebuilds M and M+1 (which compares to M); inputs are every std
-- dataset upstream (the monthly operations and the master's industry), so any other change rebuilds all.

{% set inputs = [
    'amr_registration', 'tax_monthly', 'stats_annual', 'power_monthly', 'land_parcels', 'eco_emissions',
    'ent_production', 'ent_equipment', 'ent_supply_orders'
] %}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{% if is_incremental() %}delete from {{ this }} where {{ changed_periods('period', "
        ~ inputs ~ ", 'month', [0, 1]) }}{% endif %}"
) }}

with ops as (
    select
        o.*,
        strftime(cast(o.period || '-01' as date) - interval 1 month, '%Y-%m') as prev_period
    from {{ ref('theme_operations_monthly') }} as o
),

monthly as (
    -- month on month means against the calendar month before; a month nobody delivered compares to nothing
    select
        o.uscc,
        m.industry_code,
        o.period,
        o.output_value_yuan,
        o.electricity_kwh,
        o.employees,
        p.output_value_yuan as prev_output_value_yuan,
        p.electricity_kwh as prev_electricity_kwh,
        p.employees as prev_employees,
        o.prev_period
    from ops as o
    left join {{ ref('theme_operations_monthly') }} as p on o.uscc = p.uscc and o.prev_period = p.period
    left join {{ ref('base_enterprise') }} as m on o.uscc = m.uscc
)

select
    uscc,
    industry_code,
    period,
    output_value_yuan,
    electricity_kwh,
    employees,
    output_value_yuan / nullif(prev_output_value_yuan, 0) - 1 as output_mom,
    electricity_kwh / nullif(prev_electricity_kwh, 0) - 1 as electricity_mom,
    employees * 1.0 / nullif(prev_employees, 0) - 1 as employees_mom,
    coalesce(electricity_kwh / nullif(prev_electricity_kwh, 0) - 1 < -{{ var('electricity_drop_threshold') }}, false)
        as flag_electricity_drop,
    coalesce(output_value_yuan / nullif(prev_output_value_yuan, 0) - 1 < -{{ var('output_drop_threshold') }}, false)
        as flag_output_drop,
    coalesce(employees * 1.0 / nullif(prev_employees, 0) - 1 < -{{ var('employment_drop_threshold') }}, false)
        as flag_employment_drop,
    prev_period
from monthly
{% if is_incremental() %}where {{ changed_periods('period', inputs, 'month', [0, 1]) }}{% endif %}
