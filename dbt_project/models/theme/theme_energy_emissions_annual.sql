-- 能源与排放主题库（年）: energy use (统计), metered electricity (电力, annualised when months are missing)
-- and emissions (生态环境), per enterprise and year. Emission equivalent = COD + NH3-N + SO2 + NOx (t).

with power as (
    select
        uscc,
        cast(substr(period, 1, 4) as integer) as year,
        {{ exact_sum('consumption_kwh') }} as electricity_kwh_delivered,
        count(distinct period) as electricity_months
    from {{ ref('stg_power__monthly') }}
    where uscc is not null
    group by uscc, cast(substr(period, 1, 4) as integer)
),

stats as (
    select
        uscc,
        year,
        energy_tce
    from {{ ref('stg_stats__annual') }}
),

eco as (
    select
        uscc,
        year,
        cod_t + nh3n_t + so2_t + nox_t as emission_eq_t,
        permit_no
    from {{ ref('stg_eco__emissions') }}
),

keys as (
    select
        uscc,
        year
    from power
    union
    select
        uscc,
        year
    from stats
    union
    select
        uscc,
        year
    from eco
)

select
    k.uscc,
    k.year,
    s.energy_tce,
    p.electricity_kwh_delivered,
    p.electricity_months,
    p.electricity_kwh_delivered * 12.0 / p.electricity_months as electricity_kwh_annualised,
    e.emission_eq_t,
    e.permit_no is not null as has_emission_report
from keys as k
left join power as p on k.uscc = p.uscc and k.year = p.year
left join stats as s on k.uscc = s.uscc and k.year = s.year
left join eco as e on k.uscc = e.uscc and k.year = e.year
