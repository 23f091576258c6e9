select
    parcel_id,
    holder_name,
    uscc,
    location,
    area as area_m2,
    land_use,
    acquired_on,
    _source_department,
    _source_file,
    cast(_ingested_at as date) as _delivered_on
from {{ std_rows('land_parcels') }} as std_rows
