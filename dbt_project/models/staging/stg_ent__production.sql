select
    uscc,
    name,
    period,
    output_value as output_value_yuan,
    output_qty,
    electricity_kwh,
    employees,
    _source_department,
    _source_file,
    cast(_ingested_at as date) as _delivered_on
from {{ std_rows('ent_production') }} as std_rows
