-- 亩均效益评价分项得分: one row per enterprise, year and indicator.
--   score = clamp(value ÷ benchmark, floor_ratio, cap_ratio) × weight     (empty cap or floor: none)
-- The cap and the floor are the county's policy per indicator (seed mujun_indicators). A firm without an
-- emission report (单位排放增加值) is scored by the county's missing_emission_rule: 'benchmark' scores it at
-- the benchmark (ratio 1), 'zero' gives 0 — only when the report is what is missing: a firm with a report but
-- no value added scores 0 like any indicator whose inputs are missing, and `note` names the missing input.
-- Exempt firms get no scores. score_low and score_high bound the score when an input's missing months were
-- filled by a rule (topic_mujun_inputs: the _low/_high figures); otherwise both equal the score.
{% set text = string_type() %}{#- the engine's text type (macros/adapter_sql.sql) -#}

with inputs as (
    select * from {{ ref('topic_mujun_inputs') }}
    where exempt_reason is null
),

{#- indicator → (numerator, its name, denominator, its name): value = numerator ÷ denominator, in the units of
    the published formula -#}
{%- set formulas = {
    'tax_per_mu': ('tax_wan', '税收', 'land_mu', '用地面积'),
    'value_added_per_mu': ('value_added_wan', '增加值', 'land_mu', '用地面积'),
    'value_added_per_energy': ('value_added_wan', '增加值', 'energy_tce', '能耗'),
    'value_added_per_emission': ('value_added_wan', '增加值', 'emission_eq_t', '排放量'),
    'labour_productivity': ('value_added_wan', '增加值', 'employees', '从业人数'),
    'rd_share': ('rd_wan', '研发经费', 'revenue_wan', '营业收入'),
    'tax_per_kwh': ('tax_wan', '税收', 'electricity_10k_kwh', '用电量'),
} %}

{#- the inputs whose missing months a rule filled: bounded by what those months could hold -#}
{%- set low = {
    'tax_wan': 'coalesce(tax_wan_low, tax_wan)',
    'electricity_10k_kwh': 'coalesce(electricity_10k_kwh_low, electricity_10k_kwh)',
} -%}
{%- set high = {
    'tax_wan': 'coalesce(tax_wan_high, tax_wan)',
    'electricity_10k_kwh': 'coalesce(electricity_10k_kwh_high, electricity_10k_kwh)',
} %}

values_long as (
    {%- for indicator, (num, num_zh, den, den_zh) in formulas.items() %}
        select
            uscc,
            year,
            parameter_county,
            scale_group,
            missing_emission_rule,
            emission_eq_t is null as no_emission_report,
            '{{ indicator }}' as indicator,
            {{ num }} / nullif({{ den }}, 0) as value,
            {{ low.get(num, num) }} / nullif({{ high.get(den, den) }}, 0) as value_low,
            {{ high.get(num, num) }} / nullif({{ low.get(den, den) }}, 0) as value_high,
            concat_ws(
                '、',
                case when {{ num }} is null then '{{ num_zh }}' end,
                case when coalesce({{ den }}, 0) = 0 then '{{ den_zh }}' end
            ) as missing
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
        i.cap_ratio,
        i.floor_ratio
    from {{ ref('mujun_indicators') }} as i
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
        v.value_low / p.benchmark as raw_ratio_low,
        v.value_high / p.benchmark as raw_ratio_high,
        case
            when v.value is not null then v.value / p.benchmark
            when
                v.indicator = 'value_added_per_emission' and v.no_emission_report
                and v.missing_emission_rule = 'benchmark'
                then 1.0e0
            else 0.0e0
        end as raw_ratio,
        p.cap_ratio,
        p.floor_ratio,
        case
            when v.value is not null then null
            when
                v.indicator = 'value_added_per_emission' and v.no_emission_report
                and v.missing_emission_rule = 'benchmark'
                then '无排放数据，按基准值计分'
            when v.indicator = 'value_added_per_emission' and v.no_emission_report then '无排放数据，记零分'
            else '缺少' || v.missing || '数据，记零分'
        end as note
    from values_long as v
    inner join params as p
        on
            v.parameter_county = p.county_code and v.year = p.year
            and v.scale_group = p.scale_group and v.indicator = p.indicator
),

clamped as (
    select
        *,
        case  -- a cap and a floor bound a computed ratio; a missing input is scored by its rule alone
            when value is not null and raw_ratio > cap_ratio then cap_ratio
            when value is not null and raw_ratio < floor_ratio then floor_ratio
            else raw_ratio
        end as ratio,
        case
            when value is null then raw_ratio
            when raw_ratio_low > cap_ratio then cap_ratio
            when raw_ratio_low < floor_ratio then floor_ratio
            else raw_ratio_low
        end as ratio_low,
        case
            when value is null then raw_ratio
            when raw_ratio_high > cap_ratio then cap_ratio
            when raw_ratio_high < floor_ratio then floor_ratio
            else raw_ratio_high
        end as ratio_high
    from scored
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
    ratio,
    ratio * weight as score,
    least(ratio_low, ratio_high) * weight as score_low,
    greatest(ratio_low, ratio_high) * weight as score_high,
    case
        when note is not null then note
        when raw_ratio > cap_ratio
            then
                '比值 ' || cast(round(raw_ratio, 4) as {{ text }}) || ' 超过上限，按上限 ' || cast(cap_ratio as {{ text }})
                || ' 计分'
        when raw_ratio < floor_ratio
            then
                '比值 ' || cast(round(raw_ratio, 4) as {{ text }}) || ' 低于下限，按下限 ' || cast(floor_ratio as {{ text }})
                || ' 计分'
    end as note
from clamped
