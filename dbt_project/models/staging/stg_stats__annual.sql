select
    uscc,
    name,
    year,
    value_added as value_added_yuan,
    revenue as revenue_yuan,
    avg_employees,
    rd_expense as rd_expense_yuan,
    energy_tce,
    _source_department,
    _source_file,
    cast(_ingested_at as date) as _delivered_on
from {{ std_rows('stats_annual') }} as std_rows
