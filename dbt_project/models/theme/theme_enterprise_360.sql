-- 企业360主题库: the master record with each year's economics from every department, land, equipment
-- and supply-chain position — the profile scenario applications show for one enterprise.

with years as (
    select distinct cast(substr(period, 1, 4) as integer) as year from {{ ref('theme_operations_monthly') }}
),

ops as (
    select
        uscc,
        cast(substr(period, 1, 4) as integer) as year,
        {{ exact_sum('revenue_yuan') }} as tax_revenue_yuan,
        {{ exact_sum('tax_paid_yuan') }} as tax_paid_yuan,
        count(tax_paid_yuan) as tax_months,
        {{ exact_sum('output_value_yuan') }} as output_value_yuan,
        avg(employees) as reported_employees
    from {{ ref('theme_operations_monthly') }}
    group by uscc, cast(substr(period, 1, 4) as integer)
),

land as (
    select
        l.uscc,
        y.year,
        {{ exact_sum('l.area_m2') }} / 666.6666666667 as land_mu,
        count(*) as parcels
    from {{ ref('stg_land__parcels') }} as l
    cross join years as y
    where l.uscc is not null and (l.acquired_on is null or extract(year from l.acquired_on) <= y.year)
    group by l.uscc, y.year
),

devices as (
    select
        e.uscc,
        count(*) as devices,
        {{ exact_sum('e.rated_power_kw') }} as rated_power_kw
    from {{ ref('stg_ent__equipment') }} as e
    group by e.uscc
),

utilisation as (
    select
        uscc,
        {{ exact_avg('oee') }} as mean_oee,
        {{ exact_avg('availability') }} as mean_availability
    from {{ ref('theme_equipment_utilisation') }}
    group by uscc
),

supplies as (
    select
        supplier_uscc as uscc,
        count(*) as buyers,
        {{ exact_sum('amount_yuan') }} as sales_yuan
    from {{ ref('theme_supply_relations') }}
    group by supplier_uscc
),

buys as (
    select
        buyer_uscc as uscc,
        count(*) as suppliers,
        {{ exact_sum('amount_yuan') }} as purchases_yuan
    from {{ ref('theme_supply_relations') }}
    group by buyer_uscc
)

select
    m.uscc,
    y.year,
    m.name,
    m.region_code,
    m.industry_code,
    m.scale_type,
    m.status,
    m.established_on,
    o.tax_revenue_yuan,
    o.tax_paid_yuan,
    o.tax_months,
    o.output_value_yuan,
    o.reported_employees,
    s.value_added_yuan,
    s.revenue_yuan as stats_revenue_yuan,
    s.avg_employees,
    s.rd_expense_yuan,
    en.energy_tce,
    en.electricity_kwh_delivered,
    en.electricity_months,
    en.electricity_kwh_annualised,
    en.emission_eq_t,
    coalesce(en.has_emission_report, false) as has_emission_report,
    l.land_mu,
    coalesce(l.parcels, 0) as parcels,
    coalesce(d.devices, 0) as devices,
    u.mean_oee,
    coalesce(sp.buyers, 0) as buyers,
    sp.sales_yuan,
    coalesce(b.suppliers, 0) as suppliers,
    b.purchases_yuan
from {{ ref('base_enterprise') }} as m
cross join years as y
left join ops as o on m.uscc = o.uscc and y.year = o.year
left join {{ ref('stg_stats__annual') }} as s on m.uscc = s.uscc and y.year = s.year
left join {{ ref('theme_energy_emissions_annual') }} as en on m.uscc = en.uscc and y.year = en.year
left join land as l on m.uscc = l.uscc and y.year = l.year
left join devices as d on m.uscc = d.uscc
left join utilisation as u on m.uscc = u.uscc
left join supplies as sp on m.uscc = sp.uscc
left join buys as b on m.uscc = b.uscc
