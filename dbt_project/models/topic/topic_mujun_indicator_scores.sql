-- 亩均效益评价分项得分: one row per enterprise, year and indicator.
--   score = min(value ÷ benchmark, max_ratio) × weight      (max_ratio empty: no cap)
-- A firm without an emission report (单位排放增加值) is scored by the county's missing_emission_rule:
-- 'benchmark' scores it at the benchmark (ratio 1), 'zero' gives 0. Any other missing input scores 0,
-- with the reason in `note`. Exempt firms get no scores.

with inputs as (
    select * from {{ ref('topic_mujun_inputs') }}
    where exempt_reason is null
),

{#- indicator → how its value is computed from the inputs (units as the published formula states them) -#}
{%- set formulas = {
    'tax_per_mu': 'tax_wan / nullif(land_mu, 0)',
    'value_added_per_mu': 'value_added_wan / nullif(land_mu, 0)',
    'value_added_per_energy': 'value_added_wan / nullif(energy_tce, 0)',
    'value_added_per_emission': 'value_added_wan / nullif(emission_eq_t, 0)',
    'labour_productivity': 'value_added_wan / nullif(employees, 0)',
    'rd_share': 'rd_wan / nullif(revenue_wan, 0)',
    'tax_per_kwh': 'tax_wan / nullif(electricity_10k_kwh, 0)',
} %}

values_long as (
    {%- for indicator, formula in formulas.items() %}
        select
            uscc,
            year,
            parameter_county,
            scale_group,
            missing_emission_rule,
            '{{ indicator }}' as indicator,
            {{ formula }} as value
        from inputs
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
),

params as (
    select
        i.county_code,
        i.year,
        i.scale_group,
        i.ord,
        i.indicator,
        i.name_zh,
        i.unit,
        i.weight,
        i.benchmark,
        p.max_ratio
    from {{ ref('mujun_indicators') }} as i
    inner join {{ ref('mujun_parameters') }} as p on i.county_code = p.county_code and i.year = p.year
),

scored as (
    select
        v.uscc,
        v.year,
        v.scale_group,
        p.ord,
        v.indicator,
        p.name_zh,
        p.unit,
        v.value,
        p.weight,
        p.benchmark,
        case
            when v.value is not null then v.value / p.benchmark
            when v.indicator = 'value_added_per_emission' and v.missing_emission_rule = 'benchmark' then 1.0
            else 0.0
        end as raw_ratio,
        p.max_ratio,
        case
            when v.value is not null then null
            when v.indicator = 'value_added_per_emission' and v.missing_emission_rule = 'benchmark'
                then '无排放数据，按基准值计分'
            when v.indicator = 'value_added_per_emission' then '无排放数据，记零分'
            else '缺少计算所需数据，记零分'
        end as note
    from values_long as v
    inner join params as p
        on
            v.parameter_county = p.county_code and v.year = p.year
            and v.scale_group = p.scale_group and v.indicator = p.indicator
)

select
    uscc,
    year,
    scale_group,
    ord,
    indicator,
    name_zh,
    unit,
    value,
    benchmark,
    weight,
    case when max_ratio is not null then least(raw_ratio, max_ratio) else raw_ratio end as ratio,
    case when max_ratio is not null then least(raw_ratio, max_ratio) else raw_ratio end * weight as score,
    note
from scored
