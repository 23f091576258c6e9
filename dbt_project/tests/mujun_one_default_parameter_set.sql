-- Exactly one county-year is the default parameter set (used where a county has no rows of its own).
select count(*) as defaults
from {{ ref('mujun_parameters') }}
where is_default
having count(*) <> 1
