-- 企业运行监测（行业）: the same indicators summed per industry and month, with how many firms raised each flag
-- and how many could not be compared for a data gap.
select
    f.industry_code,
    coalesce(c.name_zh, '行业不明（无登记信息）') as industry_name_zh,
    f.period,
    count(*) as enterprises,
    {{ exact_sum('f.output_value_yuan') }} as output_value_yuan,
    {{ exact_sum('f.electricity_kwh') }} as electricity_kwh,
    cast(sum(f.employees) as bigint) as employees,
    count(*) filter (where f.flag_electricity_drop) as enterprises_electricity_drop,
    count(*) filter (where f.flag_output_drop) as enterprises_output_drop,
    count(*) filter (where f.flag_employment_drop) as enterprises_employment_drop,
    count(*) filter (where f.electricity_data_gap) as enterprises_electricity_data_gap
from {{ ref('topic_operation_monitoring') }} as f
left join {{ ref('industry_codes') }} as c on f.industry_code = c.industry_code
group by f.industry_code, c.name_zh, f.period
