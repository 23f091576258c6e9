-- 亩均评价输入完整性: for every firm, year and source of the evaluation — 税务 monthly filings, 电力 monthly
-- metering of every supply account, 统计 annual report (规上) — which periods are present, which missing, how
-- many rows entity resolution recovered (records that came without a usable credit code), which missing months
-- the quarantine holds a row of (a reason other than identity: the data to fix, not a delivery to chase), and
-- what the missing periods could hold: the firm's own lowest and highest complete month (the bounds the band
-- is tested under). From the 归集 status (ops.collection_status): the months the department delivered after the
-- deadline (late_periods), and the missing ones whose delivery has not come at all — overdue, only refused files,
-- or not yet due (undelivered_periods: a department to chase, not a firm that did not file).
-- A power month is complete only when every supply account the firm has in the year is metered in it.
{% set text = string_type() %}{#- the engine's text type (macros/adapter_sql.sql) -#}

with firms as (
    select
        uscc,
        year,
        scale_type
    from {{ ref('theme_enterprise_360') }}
    where {{ closed_years('year') }}
),

months as (
    select m.month from (values (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11), (12)) as m (month)
),

spine as (
    select
        f.uscc,
        f.year,
        cast(f.year as {{ text }}) || '-' || lpad(cast(m.month as {{ text }}), 2, '0') as period
    from firms as f
    cross join months as m
),

tax_months as (
    select
        uscc,
        period,
        {{ exact_sum('tax_paid_yuan') }} as value
    from {{ ref('stg_tax__monthly') }}
    where uscc is not null
    group by uscc, period
),

power_rows as (
    select
        uscc,
        account_no,
        period,
        consumption_kwh
    from {{ ref('stg_power__monthly') }}
    where uscc is not null
),

accounts as (
    select
        uscc,
        cast(substr(period, 1, 4) as integer) as year,
        count(distinct account_no) as accounts
    from power_rows
    group by uscc, cast(substr(period, 1, 4) as integer)
),

power_months as (
    select
        r.uscc,
        r.period,
        {{ exact_sum('r.consumption_kwh') }} as value,
        count(distinct r.account_no) = max(a.accounts) as complete
    from power_rows as r
    inner join accounts as a on r.uscc = a.uscc and cast(substr(r.period, 1, 4) as integer) = a.year
    group by r.uscc, r.period
),

quarantined as (
    -- firm-months with a filing or metering row the quarantine holds for a reason other than the firm's
    -- identity (a row without a usable credit code names no firm here: entity resolution matches it)
    select distinct
        regexp_extract(record_key, '(?:^|\|)uscc=([^|]*)', 1) as uscc,
        partition as period,
        case dataset when 'tax_monthly' then 'tax' else 'power' end as source
    from {{ source('quarantine', 'findings') }}
    where action = 'quarantined' and dataset in ('tax_monthly', 'power_monthly')
),

deliveries as (
    -- what the department's delivery of each period did: on_time, late, rejected, missing, pending (an empty
    -- status — never checked — says nothing: no month is then taken as undelivered)
    select
        case dataset when 'tax_monthly' then 'tax' when 'power_monthly' then 'power' else 'stats' end as source,
        period,
        state
    from {{ source('ops', 'collection_status') }}
    where expected and dataset in ('tax_monthly', 'power_monthly', 'stats_annual')
),

monthly as (
    select
        s.uscc,
        s.year,
        s.period,
        'tax' as source,
        t.value,
        t.value is not null as present,
        q.period is not null as quarantined,
        d.state as delivery
    from spine as s
    left join tax_months as t on s.uscc = t.uscc and s.period = t.period
    left join quarantined as q on s.uscc = q.uscc and s.period = q.period and q.source = 'tax'
    left join deliveries as d on s.period = d.period and d.source = 'tax'
    union all
    select
        s.uscc,
        s.year,
        s.period,
        'power' as source,
        case when p.complete then p.value end as value,
        coalesce(p.complete, false) as present,
        q.period is not null as quarantined,
        d.state as delivery
    from spine as s
    left join power_months as p on s.uscc = p.uscc and s.period = p.period
    left join quarantined as q on s.uscc = q.uscc and s.period = q.period and q.source = 'power'
    left join deliveries as d on s.period = d.period and d.source = 'power'
),

carried as (
    select
        *,
        coalesce(
            last_value(value ignore nulls) over (
                partition by uscc, year, source order by period rows between unbounded preceding and current row
            ),
            first_value(value ignore nulls) over (
                partition by uscc, year, source order by period rows between current row and unbounded following
            )
        ) as carried_value
    from monthly
),

resolved as (
    select
        uscc,
        cast(substr(period, 1, 4) as integer) as year,
        'tax' as source,
        count(*) as resolved_rows
    from {{ source('ops', 'resolved_tax_monthly') }}
    group by uscc, cast(substr(period, 1, 4) as integer)
    union all
    select
        uscc,
        cast(substr(period, 1, 4) as integer) as year,
        'power' as source,
        count(*) as resolved_rows
    from {{ source('ops', 'resolved_power_monthly') }}
    group by uscc, cast(substr(period, 1, 4) as integer)
    union all
    select
        uscc,
        year,
        'stats' as source,
        count(*) as resolved_rows
    from {{ source('ops', 'resolved_stats_annual') }}
    group by uscc, year
),

-- the texts and the values of a firm's year in two aggregations joined: in one, Sail 0.7's planner fails on the
-- mix ("physical input schema should be the same as … logical": nullability of a common subexpression)
monthly_texts as (
    select
        c.uscc,
        c.year,
        c.source,
        count(*) filter (where c.present) as present,
        {{ ordered_string_agg('case when not c.present then c.period end', "','", 'c.period') }} as missing_periods,
        {{ ordered_string_agg(
            'case when not c.present and c.quarantined then c.period end', "','", 'c.period'
        ) }} as quarantined_periods,
        {{ ordered_string_agg(
            "case when c.present and c.delivery = 'late' then c.period end", "','", 'c.period'
        ) }} as late_periods,
        {{ ordered_string_agg(
            "case when not c.present and c.delivery in ('missing', 'rejected', 'pending') then c.period end",
            "','",
            'c.period',
        ) }} as undelivered_periods
    from carried as c
    group by c.uscc, c.year, c.source
),

monthly_values as (
    select
        c.uscc,
        c.year,
        c.source,
        {{ exact_sum('c.value') }} as delivered_value,
        {{ exact_sum('c.carried_value') }} as carried_value,
        min(c.value) as lowest_month,
        max(c.value) as highest_month
    from carried as c
    group by c.uscc, c.year, c.source
),

monthly_sources as (
    select
        t.uscc,
        t.year,
        t.source,
        12 as expected,
        t.present,
        t.missing_periods,
        t.quarantined_periods,
        t.late_periods,
        t.undelivered_periods,
        v.delivered_value,
        v.carried_value,
        v.lowest_month,
        v.highest_month
    from monthly_texts as t
    inner join monthly_values as v on t.uscc = v.uscc and t.year = v.year and t.source = v.source
),

stats as (
    select
        f.uscc,
        f.year,
        'stats' as source,
        case when f.scale_type = '规上' then 1 else 0 end as expected,
        count(s.uscc) as present,
        case when f.scale_type = '规上' and count(s.uscc) = 0 then cast(f.year as {{ text }}) end as missing_periods,
        case
            when f.scale_type = '规上' and count(s.uscc) > 0 and any_value(d.state) = 'late'
                then cast(f.year as {{ text }})
        end as late_periods,
        case
            when f.scale_type = '规上' and count(s.uscc) = 0 and any_value(d.state) in ('missing', 'rejected', 'pending')
                then cast(f.year as {{ text }})
        end as undelivered_periods
    from firms as f
    left join {{ ref('stg_stats__annual') }} as s on f.uscc = s.uscc and f.year = s.year
    left join deliveries as d on cast(f.year as {{ text }}) = d.period and d.source = 'stats'
    group by f.uscc, f.year, f.scale_type
)

select
    m.uscc,
    m.year,
    m.source,
    m.expected,
    m.present,
    m.missing_periods,
    m.quarantined_periods,
    m.late_periods,
    m.undelivered_periods,
    case when m.source = 'power' then a.accounts end as accounts,
    coalesce(r.resolved_rows, 0) as resolved_rows,
    m.delivered_value,
    case when m.present > 0 then m.delivered_value * m.expected / m.present end as annualised_value,
    m.carried_value,
    m.delivered_value + (m.expected - m.present) * m.lowest_month as low_value,
    m.delivered_value + (m.expected - m.present) * m.highest_month as high_value,
    case when m.present = m.expected then 'complete' when m.present = 0 then 'missing' else 'incomplete' end as status
from monthly_sources as m
left join accounts as a on m.uscc = a.uscc and m.year = a.year
left join resolved as r on m.uscc = r.uscc and m.year = r.year and m.source = r.source
union all
select
    s.uscc,
    s.year,
    s.source,
    s.expected,
    s.present,
    s.missing_periods,
    null as quarantined_periods,
    s.late_periods,
    s.undelivered_periods,
    null as accounts,
    coalesce(r.resolved_rows, 0) as resolved_rows,
    null as delivered_value,
    null as annualised_value,
    null as carried_value,
    null as low_value,
    null as high_value,
    case
        when s.expected = 0 then 'not_required' when s.present >= s.expected then 'complete' else 'missing'
    end as status
from stats as s
left join resolved as r on s.uscc = r.uscc and s.year = r.year and s.source = r.source
