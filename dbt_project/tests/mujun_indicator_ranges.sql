-- Weights are positive points, benchmarks positive values (a score divides by them); ratio caps, where
-- set, are at least 1 (a cap below the benchmark would punish firms exactly at it).
select
    'mujun_indicators' as seed,
    county_code,
    year,
    indicator as what
from {{ ref('mujun_indicators') }}
where weight <= 0 or weight > 100 or benchmark <= 0
union all
select
    'mujun_parameters' as seed,
    county_code,
    year,
    'max_ratio, new_enterprise_years or min_months_electricity' as what
from {{ ref('mujun_parameters') }}
where
    (max_ratio is not null and max_ratio < 1)
    or new_enterprise_years < 0
    or min_months_electricity not between 1 and 12
