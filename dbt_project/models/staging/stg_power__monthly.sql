select
    account_no,
    account_name,
    uscc,
    period,
    consumption as consumption_kwh,
    voltage_level,
    _source_department,
    _source_file,
    cast(_ingested_at as date) as _delivered_on
from {{ std_rows('power_monthly') }} as std_rows
