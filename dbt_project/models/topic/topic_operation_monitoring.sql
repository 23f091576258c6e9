-- 企业运行监测: monthly output, electricity and employment per enterprise, compared with the months before (环比)
-- against the season, and with the same month a year before (同比) per working day.
--   环比 (seasonal): the firm's ratio to the month before, and to the month before that, each divided by the
--     typical ratio of those months — the median over the firms of its industry that compare them (the county's
--     when fewer than min_peers do): a Spring Festival dip everyone shares, whatever its lunar date, is the season,
--     not a drop. The two are averaged (geometric mean) so one noisy month does not raise an alarm; a drop is
--     flagged once, in the month it starts (not again while it lasts).
--   同比: per working day (seed calendar_months); January and February combined (1–2月合并), as the festival moves
--     between them from year to year.
--   A drop is flagged only on comparable inputs: both months delivered (power: on the same supply accounts);
--     otherwise the row is a data gap with the reason, never a flag. Thresholds per industry are a seed
--     (monitoring_thresholds, '*' for every industry).
-- Incremental by month: a change of month M rebuilds M, M+1 and M+2 (which compare to M), M+3 (whose flag depends
-- on M+2's), M+12 (同比) and, for the combined January–February, the month before and M+11; inputs are every std
-- dataset upstream (the monthly operations and the master's industry).
{% set text = string_type() %}{#- the engine's text type (macros/adapter_sql.sql) -#}

{% set inputs = [
    'amr_registration', 'tax_monthly', 'stats_annual', 'power_monthly', 'land_parcels', 'eco_emissions',
    'ent_production', 'ent_equipment', 'ent_supply_orders'
] %}
{#- the months a change of month M rebuilds, relative to M -#}
{% set offsets = [-1, 0, 1, 2, 3, 11, 12] %}
{% set indicators = {
    'electricity': ('electricity_kwh', '用电'),
    'output': ('output_value_yuan', '产值'),
    'employment': ('employees', '用工'),
} %}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{% if is_incremental() %}delete from {{ this }} where {{ changed_periods('period', "
        ~ inputs ~ ", 'month', " ~ offsets ~ ") }}{% endif %}"
) }}

with calendar as (
    select * from {{ ref('calendar_months') }}
),

{% if is_incremental() %}
    rebuilt as (
        -- the months this run replaces that hold rows
        select distinct period from {{ ref('theme_operations_monthly') }}
        where {{ changed_periods('period', inputs, 'month', offsets) }}
    ),

    needed as (
        -- the months their figures read as rows of ops: the month, the month before (whose flag decides
        -- whether the drop starts here), the same month a year before (同比), and January and February of
        -- both years (1–2月合并); every other input (the months before, the medians) is joined in full
        select period from rebuilt
        union
        select {{ shift_month('period', -1) }} from rebuilt
        union
        select {{ shift_month('period', -12) }} from rebuilt
        union
        select cast(cast(substr(r.period, 1, 4) as integer) - y.back as {{ text }}) || m.month
        from rebuilt as r
        cross join (values (0), (1)) as y (back)
        cross join (values ('-01'), ('-02')) as m (month)
        where substr(r.period, 6, 2) in ('01', '02')
    ),
{% endif %}

ops as (
    select
        o.*,
        {{ shift_month('o.period', -1) }} as prev_period,
        {{ shift_month('o.period', -2) }} as prev2_period,
        {{ shift_month('o.period', -12) }} as yoy_period
    from {{ ref('theme_operations_monthly') }} as o
    {% if is_incremental() %}where o.period in (select n.period from needed as n){% endif %}
),

pairs as (
    -- month on month means against the calendar months before; a month nobody delivered compares to nothing
    select
        o.uscc,
        m.industry_code,
        o.period,
        o.prev_period,
        o.output_value_yuan,
        o.electricity_kwh,
        o.employees,
        p.output_value_yuan as prev_output_value_yuan,
        p.electricity_kwh as prev_electricity_kwh,
        p.employees as prev_employees,
        q.output_value_yuan as prev2_output_value_yuan,
        case when q.supply_accounts = o.supply_accounts then q.electricity_kwh end as prev2_electricity_kwh,
        q.employees as prev2_employees,
        case
            when o.electricity_kwh is null then '本月无用电计量'
            when p.electricity_kwh is null then '上月无用电计量'
            when o.supply_accounts <> p.supply_accounts then '用电户号数与上月不同'
        end as electricity_gap,
        case
            when o.output_value_yuan is null then '本月无产值填报'
            when p.output_value_yuan is null then '上月无产值填报'
        end as output_gap,
        case
            when o.employees is null then '本月无用工填报'
            when p.employees is null then '上月无用工填报'
        end as employment_gap
    from ops as o
    left join {{ ref('theme_operations_monthly') }} as p on o.uscc = p.uscc and o.prev_period = p.period
    left join {{ ref('theme_operations_monthly') }} as q on o.uscc = q.uscc and o.prev2_period = q.period
    left join {{ ref('base_enterprise') }} as m on o.uscc = m.uscc
),

ratios as (
    select
        {%- for name, (col, zh) in indicators.items() %}
            case
                when {{ name }}_gap is null then cast({{ col }} as double) / nullif(prev_{{ col }}, 0)
            end as {{ name }}_r1,
            case
                when {{ name }}_gap is null then cast({{ col }} as double) / nullif(prev2_{{ col }}, 0)
            end as {{ name }}_r2,
        {%- endfor %}
        *
    from pairs
),

{% for name, (col, zh) in indicators.items() %}
    {{ name }}_season as (
        -- the typical ratios of a month to the one and two months before, per industry and county-wide
        select
            period,
            industry_code,
            median({{ name }}_r1) as typical1,
            median({{ name }}_r2) as typical2,
            count({{ name }}_r1) as peers,
            grouping(industry_code) = 1 as county_wide
        from ratios
        where {{ name }}_r1 is not null
        group by grouping sets ((period, industry_code), (period))
    ),
{% endfor %}

thresholds as (
    select * from {{ ref('monitoring_thresholds') }}
),

typical as (
    select
        {%- for name, (col, zh) in indicators.items() %}
            coalesce(t_{{ name }}.drop_threshold, d_{{ name }}.drop_threshold) as {{ name }}_threshold,
            case
                when s_{{ name }}.peers >= coalesce(t_{{ name }}.min_peers, d_{{ name }}.min_peers)
                    then s_{{ name }}.typical1
                else c_{{ name }}.typical1
            end as {{ name }}_typical1,
            case
                when s_{{ name }}.peers >= coalesce(t_{{ name }}.min_peers, d_{{ name }}.min_peers)
                    then s_{{ name }}.typical2
                else c_{{ name }}.typical2
            end as {{ name }}_typical2,
        {%- endfor %}
        r.*
    -- noqa: disable=LT02
    -- (sqlfluff lays out a templated run of joins as if the loop were a block; each join is at its place)
    from ratios as r
    {%- for name, (col, zh) in indicators.items() %}
    left join {{ name }}_season as s_{{ name }}
        on
            r.period = s_{{ name }}.period and r.industry_code = s_{{ name }}.industry_code
            and not s_{{ name }}.county_wide
    left join {{ name }}_season as c_{{ name }}
        on r.period = c_{{ name }}.period and c_{{ name }}.county_wide
    left join thresholds as t_{{ name }}
        on r.industry_code = t_{{ name }}.industry_code and t_{{ name }}.indicator = '{{ name }}'
    left join thresholds as d_{{ name }}
        on d_{{ name }}.industry_code = '*' and d_{{ name }}.indicator = '{{ name }}'
    {%- endfor %}
    -- noqa: enable=LT02
),

seasonal as (
    -- the change against the season: against the month before, averaged with the month before that when both
    -- are comparable
    select
        {%- for name, (col, zh) in indicators.items() %}
            case
                when {{ name }}_r2 is not null and {{ name }}_typical2 > 0
                    then sqrt(({{ name }}_r1 / {{ name }}_typical1) * ({{ name }}_r2 / {{ name }}_typical2)) - 1
                else {{ name }}_r1 / nullif({{ name }}_typical1, 0) - 1
            end as {{ name }}_change,
        {%- endfor %}
        *
    from typical
),

dropping as (
    select
        {%- for name, (col, zh) in indicators.items() %}
            coalesce({{ name }}_change < -{{ name }}_threshold, false) as {{ name }}_dropping,
        {%- endfor %}
        *
    from seasonal
),

per_day as (
    select
        o.uscc,
        o.period,
        o.electricity_kwh / nullif(c.working_days, 0) as kwh_per_day
    from ops as o
    left join calendar as c on o.period = c.period
),

jan_feb as (
    -- January and February as one period (1–2月合并): the Spring Festival moves between them from year to year
    select
        o.uscc,
        substr(o.period, 1, 4) as year,
        sum(o.electricity_kwh) / nullif(sum(c.working_days), 0) as kwh_per_day,
        count(o.electricity_kwh) as months
    from ops as o
    left join calendar as c on o.period = c.period
    where substr(o.period, 6, 2) in ('01', '02')
    group by o.uscc, substr(o.period, 1, 4)
),

yearly as (
    -- 同比 per working day
    select
        a.uscc,
        a.period,
        case
            when substr(a.period, 6, 2) in ('01', '02') then case when jf.months = 2 then jf.kwh_per_day end
            else pd.kwh_per_day
        end as kwh_per_day,
        case
            when substr(a.period, 6, 2) in ('01', '02') then case when jfy.months = 2 then jfy.kwh_per_day end
            else pdy.kwh_per_day
        end as yoy_kwh_per_day
    from ops as a
    left join per_day as pd on a.uscc = pd.uscc and a.period = pd.period
    left join per_day as pdy on a.uscc = pdy.uscc and a.yoy_period = pdy.period
    left join jan_feb as jf on a.uscc = jf.uscc and substr(a.period, 1, 4) = jf.year
    left join jan_feb as jfy on a.uscc = jfy.uscc and substr(a.yoy_period, 1, 4) = jfy.year
)

select
    a.uscc,
    a.industry_code,
    a.period,
    a.output_value_yuan,
    a.electricity_kwh,
    a.employees,
    a.output_value_yuan / nullif(a.prev_output_value_yuan, 0) - 1 as output_mom,
    a.electricity_kwh / nullif(a.prev_electricity_kwh, 0) - 1 as electricity_mom,
    cast(a.employees as double) / nullif(a.prev_employees, 0) - 1 as employees_mom,
    a.output_change as output_mom_seasonal,
    a.electricity_change as electricity_mom_seasonal,
    a.employment_change as employees_mom_seasonal,
    y.kwh_per_day / nullif(y.yoy_kwh_per_day, 0) - 1 as electricity_yoy,
    coalesce(c.spring_festival_days > 0 or cp.spring_festival_days > 0, false) as spring_festival,
    -- a drop is flagged in the month it starts: not again while it lasts
    a.electricity_dropping and not coalesce(b.electricity_dropping, false) as flag_electricity_drop,
    a.output_dropping and not coalesce(b.output_dropping, false) as flag_output_drop,
    a.employment_dropping and not coalesce(b.employment_dropping, false) as flag_employment_drop,
    a.electricity_gap is not null as electricity_data_gap,
    nullif(concat_ws(
        '；',
        case when a.electricity_gap is not null then '用电：' || a.electricity_gap end,
        case
            when a.output_gap is not null and (a.output_value_yuan is not null or a.prev_output_value_yuan is not null)
                then '产值：' || a.output_gap
        end
    ), '') as data_gap_reason,
    a.prev_period
from dropping as a
left join dropping as b on a.uscc = b.uscc and a.prev_period = b.period
left join yearly as y on a.uscc = y.uscc and a.period = y.period
left join calendar as c on a.period = c.period
left join calendar as cp on a.prev_period = cp.period
{% if is_incremental() %}where {{ changed_periods('a.period', inputs, 'month', offsets) }}{% endif %}
