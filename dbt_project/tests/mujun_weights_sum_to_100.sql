-- 亩均 policy: within a county, year and scale group the indicator weights add up to 100 points.
select
    county_code,
    year,
    scale_group,
    sum(weight) as total_weight
from {{ ref('mujun_indicators') }}
group by county_code, year, scale_group
having abs(sum(weight) - 100) > 1e-9
