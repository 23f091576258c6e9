-- 亩均效益综合评价结果: total score, rank within county, year and scale group, the A/B/C/D band, and a
-- readable explanation of each indicator's contribution. Exempt firms are listed with the reason.

with totals as (
    select
        uscc,
        year,
        {{ exact_sum('score') }} as total_score
    from {{ ref('topic_mujun_indicator_scores') }}
    group by uscc, year
),

explained as (
    select
        uscc,
        year,
        string_agg(
            name_zh || ' '
            || coalesce(cast(round(value, 4) as varchar) || unit, '—') || ' ÷ ' || cast(benchmark as varchar)
            || ' × ' || cast(weight as varchar) || ' = ' || cast(round(score, 2) as varchar)
            || coalesce('（' || note || '）', ''),
            '；' order by ord
        ) as explanation
    from {{ ref('topic_mujun_indicator_scores') }}
    group by uscc, year
),

ranked as (
    select
        i.uscc,
        i.year,
        i.parameter_county,
        i.scale_group,
        t.total_score,
        row_number() over (
            partition by i.county_code, i.year, i.scale_group order by t.total_score desc, i.uscc asc
        ) as rank_in_group,
        count(*) over (partition by i.county_code, i.year, i.scale_group) as group_size
    from {{ ref('topic_mujun_inputs') }} as i
    inner join totals as t on i.uscc = t.uscc and i.year = t.year
)

select
    i.uscc,
    i.year,
    i.name,
    i.county_code,
    i.parameter_county,
    i.industry_code,
    i.scale_group,
    r.total_score,
    r.rank_in_group,
    r.group_size,
    100.0 * r.rank_in_group / r.group_size as rank_pct,
    b.band,
    b.name_zh as band_name_zh,
    e.explanation,
    i.exempt_reason
from {{ ref('topic_mujun_inputs') }} as i
left join ranked as r on i.uscc = r.uscc and i.year = r.year
left join explained as e on i.uscc = e.uscc and i.year = e.year
left join {{ ref('mujun_bands') }} as b
    on
        r.parameter_county = b.county_code and r.year = b.year
        and 100.0 * r.rank_in_group / r.group_size > b.rank_from_pct
        and 100.0 * r.rank_in_group / r.group_size <= b.rank_to_pct
