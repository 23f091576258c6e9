-- 亩均效益综合评价结果: total score, rank within county, year and scale group, the A/B/C/D band, and a
-- readable explanation: each indicator's contribution (with its cap, floor or missing input), the rank and
-- the band rule that put the firm in its band, and whose parameters were used when the firm's county has
-- none of its own. Exempt firms are listed with the reason.

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
),

banded as (
    select
        r.uscc,
        r.year,
        b.band,
        b.name_zh as band_name_zh,
        b.rank_from_pct,
        b.rank_to_pct
    from ranked as r
    inner join {{ ref('mujun_bands') }} as b
        on
            r.parameter_county = b.county_code and r.year = b.year
            and 100.0 * r.rank_in_group / r.group_size > b.rank_from_pct
            and 100.0 * r.rank_in_group / r.group_size <= b.rank_to_pct
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
    b.band_name_zh,
    e.explanation
    || '。综合得分 ' || cast(round(r.total_score, 2) as varchar) || '，' || i.scale_group || '组内排名第 '
    || cast(r.rank_in_group as varchar) || '/' || cast(r.group_size as varchar) || '（名次百分位 '
    || cast(round(100.0 * r.rank_in_group / r.group_size, 1) as varchar) || '%），按 ' || r.parameter_county || ' '
    || cast(r.year as varchar) || ' 年分档规则（' || coalesce(
        cast(b.rank_from_pct as varchar) || '% < 名次百分位 ≤ ' || cast(b.rank_to_pct as varchar) || '% 为 '
        || b.band_name_zh,
        '无适用档次'
    ) || '）'
    || case
        when i.parameter_county <> i.county_code
            then '；企业所在区县 ' || i.county_code || ' 无本年度评价参数，采用 ' || i.parameter_county || ' 的参数'
        else ''
    end
    || coalesce('。' || i.objection_note, '') as explanation,
    i.exempt_reason
from {{ ref('topic_mujun_inputs') }} as i
left join ranked as r on i.uscc = r.uscc and i.year = r.year
left join explained as e on i.uscc = e.uscc and i.year = e.year
left join banded as b on i.uscc = b.uscc and i.year = b.year
