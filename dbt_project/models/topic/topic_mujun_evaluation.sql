-- 亩均效益综合评价结果: total score, rank within county, year and scale group, the A/B/C/D band, and a
-- readable explanation: each indicator's contribution (with its cap, floor or missing input), the rank and
-- the band rule that put the firm in its band, and whose parameters were used when the firm's county has
-- none of its own. Exempt firms are listed with the reason.
-- No band on incomplete inputs, silently: a firm whose inputs the county's rule does not fill (verify) is 待核实,
-- unranked, with the reason; a firm whose missing months a rule filled is banded only when its band is the same
-- at both bounds of what those months could hold (its best rank: above every firm scoring more than its upper
-- bound; its worst: below every firm scoring at least its lower bound) — otherwise 待核实 with the range.
{% set text = string_type() %}{#- the engine's text type (macros/adapter_sql.sql) -#}

with totals as (
    select
        uscc,
        year,
        {{ exact_sum('score') }} as total_score,
        {{ exact_sum('score_low') }} as total_low,
        {{ exact_sum('score_high') }} as total_high
    from {{ ref('topic_mujun_indicator_scores') }}
    group by uscc, year
),

explained as (
    select
        uscc,
        year,
        {{ ordered_string_agg(
            "name_zh || ' ' || coalesce(cast(round(value, 4) as " ~ string_type() ~ ") || unit, '—') || ' ÷ '
            || cast(benchmark as " ~ string_type() ~ ") || ' × ' || cast(weight as " ~ string_type() ~ ") || ' = '
            || cast(round(score, 2) as " ~ string_type() ~ ") || coalesce('（' || note || '）', '')",
            "'；'",
            'ord',
        ) }} as explanation
    from {{ ref('topic_mujun_indicator_scores') }}
    group by uscc, year
),

ranked as (
    select
        i.uscc,
        i.year,
        i.county_code,
        i.parameter_county,
        i.scale_group,
        t.total_score,
        t.total_low,
        t.total_high,
        cast(row_number() over (
            partition by i.county_code, i.year, i.scale_group order by t.total_score desc, i.uscc asc
        ) as bigint) as rank_in_group,
        count(*) over (partition by i.county_code, i.year, i.scale_group) as group_size
    from {{ ref('topic_mujun_inputs') }} as i
    inner join totals as t on i.uscc = t.uscc and i.year = t.year
    where i.verify_reason is null
),

-- the ranks a firm with bounds could take: every firm's score as a point, each bound as a probe, in one order
events as (
    select
        county_code,
        year,
        scale_group,
        total_score as v,
        1 as is_point,
        cast(null as {{ text }}) as uscc,
        cast(null as {{ text }}) as probe
    from ranked
    union all
    select
        county_code,
        year,
        scale_group,
        total_high as v,
        0 as is_point,
        uscc,
        'high' as probe
    from ranked
    where total_low < total_high
    union all
    select
        county_code,
        year,
        scale_group,
        total_low as v,
        0 as is_point,
        uscc,
        'low' as probe
    from ranked
    where total_low < total_high
),

counted as (
    select
        uscc,
        probe,
        -- points scoring more than the probe (ties after it) / at least the probe (ties before it)
        sum(is_point) over (
            partition by county_code, year, scale_group order by v desc, is_point asc rows unbounded preceding
        ) as above,
        sum(is_point) over (
            partition by county_code, year, scale_group order by v desc, is_point desc rows unbounded preceding
        ) as at_least
    from events
),

bounds as (
    select
        r.uscc,
        r.year,
        1 + max(case when c.probe = 'high' then c.above end) as best_rank,
        max(case when c.probe = 'low' then c.at_least end) as worst_rank
    from ranked as r
    inner join counted as c on r.uscc = c.uscc
    group by r.uscc, r.year
),

band_of as (
    select
        r.uscc,
        r.year,
        b.band,
        b.name_zh as band_name_zh,
        b.rank_from_pct,
        b.rank_to_pct,
        bb.band as best_band,
        bw.band as worst_band,
        o.best_rank,
        o.worst_rank
    from ranked as r
    left join bounds as o on r.uscc = o.uscc and r.year = o.year
    -- the bands of a county and year partition 0–100 % (test mujun_bands_cover_0_to_100): at most one matches
    left join {{ ref('mujun_bands') }} as b
        on
            r.parameter_county = b.county_code and r.year = b.year
            and 100.0e0 * r.rank_in_group / r.group_size > b.rank_from_pct
            and 100.0e0 * r.rank_in_group / r.group_size <= b.rank_to_pct
    left join {{ ref('mujun_bands') }} as bb
        on
            r.parameter_county = bb.county_code and r.year = bb.year
            and 100.0e0 * coalesce(o.best_rank, r.rank_in_group) / r.group_size > bb.rank_from_pct
            and 100.0e0 * coalesce(o.best_rank, r.rank_in_group) / r.group_size <= bb.rank_to_pct
    left join {{ ref('mujun_bands') }} as bw
        on
            r.parameter_county = bw.county_code and r.year = bw.year
            and 100.0e0 * coalesce(o.worst_rank, r.rank_in_group) / r.group_size > bw.rank_from_pct
            and 100.0e0 * coalesce(o.worst_rank, r.rank_in_group) / r.group_size <= bw.rank_to_pct
),

banded as (
    select
        o.*,
        case
            when o.best_band <> o.worst_band
                then
                    '补足缺月后综合得分可能在 ' || cast(round(t.total_low, 2) as {{ text }}) || '–'
                    || cast(round(t.total_high, 2) as {{ text }}) || ' 之间，组内名次可能为第 '
                    || cast(o.best_rank as {{ text }}) || '–' || cast(o.worst_rank as {{ text }}) || ' 名，档次可能为 '
                    || o.best_band || ' 至 ' || o.worst_band
        end as uncertain_reason
    from band_of as o
    inner join totals as t on o.uscc = t.uscc and o.year = t.year
)

select
    i.uscc,
    i.year,
    i.name,
    i.county_code,
    i.parameter_county,
    i.industry_code,
    i.scale_group,
    coalesce(r.total_score, t.total_score) as total_score,
    r.rank_in_group,
    r.group_size,
    100.0e0 * r.rank_in_group / r.group_size as rank_pct,
    case when b.uncertain_reason is null then b.band end as band,
    case when b.uncertain_reason is null then b.band_name_zh end as band_name_zh,
    case
        when i.exempt_reason is not null then '不参评'
        when i.verify_reason is not null or b.uncertain_reason is not null then '待核实'
        else '已评价'
    end as evaluation_status,
    coalesce(i.verify_reason, b.uncertain_reason) as verify_reason,
    e.explanation
    || case
        when i.verify_reason is not null
            then '。综合得分 ' || cast(round(t.total_score, 2) as {{ text }}) || '（待核实，不排名、不分档）'
        else
            '。综合得分 ' || cast(round(r.total_score, 2) as {{ text }}) || '，' || i.scale_group || '组内排名第 '
            || cast(r.rank_in_group as {{ text }}) || '/' || cast(r.group_size as {{ text }}) || '（名次百分位 '
            || cast(round(100.0e0 * r.rank_in_group / r.group_size, 1) as {{ text }}) || '%），按 ' || r.parameter_county
            || ' ' || cast(r.year as {{ text }}) || ' 年分档规则（' || coalesce(
                cast(b.rank_from_pct as {{ text }}) || '% < 名次百分位 ≤ ' || cast(b.rank_to_pct as {{ text }}) || '% 为 '
                || b.band_name_zh,
                '无适用档次'
            ) || '）'
    end
    || case
        when i.parameter_county <> i.county_code
            then '；企业所在区县 ' || i.county_code || ' 无本年度评价参数，采用 ' || i.parameter_county || ' 的参数'
        else ''
    end
    || coalesce('。数据完整性：' || i.completeness_note, '')
    || coalesce('。待核实：' || b.uncertain_reason, '')
    || coalesce('。' || i.objection_note, '') as explanation,
    i.exempt_reason
from {{ ref('topic_mujun_inputs') }} as i
left join ranked as r on i.uscc = r.uscc and i.year = r.year
left join explained as e on i.uscc = e.uscc and i.year = e.year
left join banded as b on i.uscc = b.uscc and i.year = b.year
left join totals as t on i.uscc = t.uscc and i.year = t.year
