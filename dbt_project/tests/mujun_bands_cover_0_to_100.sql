-- The A–D bands of a county and year partition the ranking 0–100 %: they start at 0, end at 100, and each
-- starts where the one before it ends, with no gap and no overlap.
with ordered as (
    select
        county_code,
        year,
        band,
        rank_from_pct,
        rank_to_pct,
        lag(rank_to_pct) over (partition by county_code, year order by rank_from_pct) as previous_to,
        min(rank_from_pct) over (partition by county_code, year) as first_from,
        max(rank_to_pct) over (partition by county_code, year) as last_to
    from {{ ref('mujun_bands') }}
)

select
    county_code,
    year,
    band
from ordered
where
    rank_to_pct <= rank_from_pct
    or first_from <> 0
    or last_to <> 100
    or (previous_to is not null and previous_to <> rank_from_pct)
