-- 亩均效益评价的输入（每企业每评价年度）: the figures the indicators divide, in the units of the
-- published formula (万元, 亩, 吨标准煤, 吨, 人, 万千瓦时), the parameter set that applies to the firm's
-- county (its own, else the default set of that year) and why a firm is exempt, if it is.
-- An accepted objection (异议, ops.mujun_objections) replaces the figure it corrects — the latest accepted one
-- per firm, year and input — and `objection_note` says what changed, by which objection and why.
-- Incomplete inputs (topic_mujun_completeness) follow the county's rule per source (seed
-- mujun_completeness_rules): annualise, carry_forward (a missing month takes the last month delivered), zero
-- (the indicators using it score 0) or verify (待核实: no band); `completeness_note` says which rule applied and
-- why, `verify_reason` why the firm cannot be banded, and the _low/_high figures bound what the missing months
-- could hold (the evaluation withholds the band when it differs between the bounds and the rule asks so). The note
-- names the months the department itself has not delivered (undelivered_periods: a file refused or never sent),
-- so a gap no firm caused is not read as the firm's; the county's rule still decides what is done with them.
{% set text = string_type() %}{#- the engine's text type (macros/adapter_sql.sql) -#}

{#- input → (its name in the note, the expression from the profile, in the formula's units) -#}
{%- set figures = {
    'tax_wan': ('税收', 'tx.value_yuan / 10000.0'),
    'land_mu': ('用地面积', 'p.land_mu'),
    'value_added_wan': ('增加值', 'p.value_added_yuan / 10000.0'),
    'energy_tce': ('能耗', 'p.energy_tce'),
    'emission_eq_t': ('排放量', 'p.emission_eq_t'),
    'employees': ('从业人数', 'p.avg_employees'),
    'rd_wan': ('研发经费', 'p.rd_expense_yuan / 10000.0'),
    'revenue_wan': ('营业收入', 'p.stats_revenue_yuan / 10000.0'),
    'electricity_10k_kwh': (
        '用电量', 'case when 12 - pw.missing >= a.min_months_electricity then pw.value_kwh / 10000.0 end'
    ),
} %}

{#- monthly source → (its alias, its name in the notes, the figure it gives) -#}
{%- set monthly = {'tax': ('tx', '纳税申报', '税收'), 'power': ('pw', '用电计量', '用电量')} %}

with params as (
    select * from {{ ref('mujun_parameters') }}
),

profile as (
    -- the years that are over (a year under way is not evaluated)
    select * from {{ ref('theme_enterprise_360') }}
    where {{ closed_years('year') }}
),

objection_events as (
    select
        *,
        row_number() over (partition by objection_id order by event_at desc) as latest
    from {{ source('ops', 'mujun_objections') }}
),

accepted as (
    select
        uscc,
        year,
        input,
        corrected_value,
        objection_id,
        reason,
        row_number() over (partition by uscc, year, input order by event_at desc) as newest
    from objection_events
    where latest = 1 and event = 'accepted'
),

corrected as (
    select
        uscc,
        year,
        {%- for name in figures %}
            max(case when input = '{{ name }}' then corrected_value end) as {{ name }},
            max(case when input = '{{ name }}' then objection_id || '（' || reason || '）' end) as {{ name }}_by,
        {%- endfor %}
        count(*) as corrections
    from accepted
    where newest = 1
    group by uscc, year
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
),

rules as (
    select * from {{ ref('mujun_completeness_rules') }}
),

{% for source, (alias, zh, figure) in monthly.items() %}
    {{ alias }} as (
        select
            c.uscc,
            c.year,
            c.status,
            r.rule,
            r.verify_when_uncertain,
            c.missing_periods,
            c.undelivered_periods,
            c.expected - c.present as missing,
            case
                when c.status = 'complete' then c.delivered_value
                when r.rule = 'annualise' then c.annualised_value
                when r.rule = 'carry_forward' then c.carried_value
                when r.rule = 'zero' then null
                else c.delivered_value
            end{% if source == 'power' %} / 1.0 as value_kwh{% else %} as value_yuan{% endif %},
            case
                when c.status <> 'complete' and r.rule in ('annualise', 'carry_forward') and r.verify_when_uncertain
                    then c.low_value
            end as low_value,
            case
                when c.status <> 'complete' and r.rule in ('annualise', 'carry_forward') and r.verify_when_uncertain
                    then c.high_value
            end as high_value,
            case
                when c.status <> 'complete'
                    then
                        '{{ zh }}缺 ' || coalesce(c.missing_periods, '全年') || '（'
                        || cast(c.expected - c.present as {{ text }}) || ' 个月'
                        || case
                            when c.accounts > 1 then '，按 ' || cast(c.accounts as {{ text }}) || ' 个用电户号计'
                            else ''
                        end
                        || '）'
                        || coalesce('，其中 ' || c.undelivered_periods || ' 为数源部门未交付（非企业漏报）', '')
                        || '，' || case r.rule
                            when 'annualise' then '按 ' || cast(c.present as {{ text }}) || ' 个完整月的月均折算全年{{ figure }}'
                            when 'carry_forward' then '缺月按上一个已报月份的数值补足'
                            when 'zero' then '使用{{ figure }}的指标记零分'
                            else '不推断，待核实'
                        end
            end as note
        from {{ ref('topic_mujun_completeness') }} as c
        inner join applicable as a on c.uscc = a.uscc and c.year = a.year
        left join rules as r on a.parameter_county = r.county_code and c.year = r.year and r.source = '{{ source }}'
        where c.source = '{{ source }}'
    ),
{% endfor %}

stats_missing as (
    select
        c.uscc,
        c.year,
        r.rule,
        c.undelivered_periods,
        '规上企业缺 ' || cast(c.year as {{ text }}) || ' 年统计年报（增加值、能耗、从业人数、研发经费、营业收入）'
        || case when c.undelivered_periods is not null then '（统计部门未交付该年报表，非企业漏报）' else '' end as note
    from {{ ref('topic_mujun_completeness') }} as c
    inner join applicable as a on c.uscc = a.uscc and c.year = a.year
    left join rules as r on a.parameter_county = r.county_code and c.year = r.year and r.source = 'stats'
    where c.source = 'stats' and c.status = 'missing'
)

select
    p.uscc,
    p.year,
    p.name,
    p.region_code as county_code,
    a.parameter_county,
    p.industry_code,
    case when p.scale_type = '规上' then '规上' else '规下' end as scale_group,
    {%- for name, (_, expr) in figures.items() %}
        case when c.{{ name }} is not null then c.{{ name }} else {{ expr }} end as {{ name }},
    {%- endfor %}
    p.electricity_months,
    -- what the missing months could hold (annualise / carry_forward with a band check); an objection's figure
    -- is certain
    case when c.tax_wan is null then tx.low_value / 10000.0 end as tax_wan_low,
    case when c.tax_wan is null then tx.high_value / 10000.0 end as tax_wan_high,
    case
        when c.electricity_10k_kwh is null and 12 - pw.missing >= a.min_months_electricity
            then pw.low_value / 10000.0
    end as electricity_10k_kwh_low,
    case
        when c.electricity_10k_kwh is null and 12 - pw.missing >= a.min_months_electricity
            then pw.high_value / 10000.0
    end as electricity_10k_kwh_high,
    nullif(concat_ws('；', tx.note, pw.note, sm.note), '') as completeness_note,
    nullif(concat_ws(
        '；',
        case when tx.status <> 'complete' and tx.rule = 'verify' and c.tax_wan is null then tx.note end,
        case when pw.status <> 'complete' and pw.rule = 'verify' and c.electricity_10k_kwh is null then pw.note end,
        case when sm.rule = 'verify' and c.value_added_wan is null then sm.note end
    ), '') as verify_reason,
    a.missing_emission_rule,
    case
        when x.industry_code is not null then x.reason_zh
        when p.status is not null and p.status <> '存续' then '登记状态为' || p.status || '，不参评'
        when p.established_on is not null and extract(year from p.established_on) > p.year - a.new_enterprise_years
            then '新设企业（' || cast(extract(year from p.established_on) as {{ text }}) || '年成立），不参评'
        when coalesce(c.land_mu, p.land_mu, 0) <= 0 then '无用地数据，不能评价'
    end as exempt_reason,
    case when c.corrections > 0 then '异议更正：' || concat_ws(
        '；',
        {%- for name, (zh, expr) in figures.items() %}
            case
                when c.{{ name }} is not null
                    then
                        '{{ zh }} ' || coalesce(cast(round({{ expr }}, 4) as {{ text }}), '—') || ' → '
                        || cast(c.{{ name }} as {{ text }}) || '，' || c.{{ name }}_by
            end{{ ',' if not loop.last }}
        {%- endfor %}
    ) end as objection_note
from profile as p
inner join applicable as a on p.uscc = a.uscc and p.year = a.year
left join tx on p.uscc = tx.uscc and p.year = tx.year
left join pw on p.uscc = pw.uscc and p.year = pw.year
left join stats_missing as sm on p.uscc = sm.uscc and p.year = sm.year
left join corrected as c on p.uscc = c.uscc and p.year = c.year
left join {{ ref('mujun_exempt_industries') }} as x
    on a.parameter_county = x.county_code and p.year = x.year and p.industry_code = x.industry_code
