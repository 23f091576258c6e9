select
    uscc,
    name,
    former_names,
    address,
    region_code,
    industry_code,
    registered_capital as registered_capital_yuan,
    established_on,
    status,
    scale_type,
    _source_department,
    _source_file,
    cast(_ingested_at as date) as _delivered_on
from {{ std_rows('amr_registration') }} as std_rows
