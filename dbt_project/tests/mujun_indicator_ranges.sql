-- Weights are positive points, benchmarks positive values (a score divides by them); a ratio cap, where
-- set, is at least 1 (a cap below the benchmark would punish firms exactly at it) and a floor, where set,
-- between 0 and 1 and below the cap.
select
    'mujun_indicators' as seed,
    county_code,
    year,
    indicator as what
from {{ ref('mujun_indicators') }}
where
    weight <= 0 or weight > 100 or benchmark <= 0
    or (cap_ratio is not null and cap_ratio < 1)
    or (floor_ratio is not null and (floor_ratio < 0 or floor_ratio > 1))
    or (cap_ratio is not null and floor_ratio is not null and floor_ratio > cap_ratio)
union all
select
    'mujun_parameters' as seed,
    county_code,
    year,
    'new_enterprise_years or min_months_electricity' as what
from {{ ref('mujun_parameters') }}
where
    new_enterprise_years < 0
    or min_months_electricity not between 1 and 12
