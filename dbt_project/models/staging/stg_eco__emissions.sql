select
    uscc,
    name,
    year,
    cod_t,
    nh3n_t,
    so2_t,
    nox_t,
    permit_no,
    _source_department,
    _source_file,
    cast(_ingested_at as date) as _delivered_on
from {{ std_rows('eco_emissions') }} as std_rows
