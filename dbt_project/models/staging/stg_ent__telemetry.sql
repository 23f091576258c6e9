select
    device_id,
    ts,
    state,
    power_kw,
    output_count,
    _source_department,
    _source_file,
    cast(_ingested_at as date) as _delivered_on
from {{ source('std', 'ent_telemetry') }}
