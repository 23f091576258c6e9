select
    device_id,
    uscc,
    device_name,
    model,
    rated_power_kw,
    commissioned_on,
    _source_department,
    _source_file,
    cast(_ingested_at as date) as _delivered_on
from {{ source('std', 'ent_equipment') }}
