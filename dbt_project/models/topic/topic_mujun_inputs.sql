-- 亩均效益评价的输入（每企业每评价年度）: the figures the indicators divide, in the units of the
-- published formula (万元, 亩, 吨标准煤, 吨, 人, 万千瓦时), the parameter set that applies to the firm's
-- county (its own, else the default set of that year) and why a firm is exempt, if it is.

with params as (
    select * from {{ ref('mujun_parameters') }}
),

profile as (
    select * from {{ ref('theme_enterprise_360') }}
),

applicable as (
    select
        p.uscc,
        p.year,
        coalesce(own.county_code, dflt.county_code) as parameter_county,
        coalesce(own.missing_emission_rule, dflt.missing_emission_rule) as missing_emission_rule,
        coalesce(own.new_enterprise_years, dflt.new_enterprise_years) as new_enterprise_years,
        coalesce(own.min_months_electricity, dflt.min_months_electricity) as min_months_electricity
    from profile as p
    left join params as own on p.region_code = own.county_code and p.year = own.year
    left join params as dflt on dflt.is_default and p.year = dflt.year
    where coalesce(own.county_code, dflt.county_code) is not null
)

select
    p.uscc,
    p.year,
    p.name,
    p.region_code as county_code,
    a.parameter_county,
    p.industry_code,
    case when p.scale_type = '规上' then '规上' else '规下' end as scale_group,
    p.tax_paid_yuan / 10000.0 as tax_wan,
    p.land_mu,
    p.value_added_yuan / 10000.0 as value_added_wan,
    p.energy_tce,
    p.emission_eq_t,
    p.avg_employees as employees,
    p.rd_expense_yuan / 10000.0 as rd_wan,
    p.stats_revenue_yuan / 10000.0 as revenue_wan,
    case when p.electricity_months >= a.min_months_electricity then p.electricity_kwh_annualised / 10000.0 end
        as electricity_10k_kwh,
    p.electricity_months,
    a.missing_emission_rule,
    case
        when x.industry_code is not null then x.reason_zh
        when p.status is not null and p.status <> '存续' then '登记状态为' || p.status || '，不参评'
        when p.established_on is not null and extract(year from p.established_on) > p.year - a.new_enterprise_years
            then '新设企业（' || cast(extract(year from p.established_on) as varchar) || '年成立），不参评'
        when coalesce(p.land_mu, 0) <= 0 then '无用地数据，不能评价'
    end as exempt_reason
from profile as p
inner join applicable as a on p.uscc = a.uscc and p.year = a.year
left join {{ ref('mujun_exempt_industries') }} as x
    on a.parameter_county = x.county_code and p.year = x.year and p.industry_code = x.industry_code
