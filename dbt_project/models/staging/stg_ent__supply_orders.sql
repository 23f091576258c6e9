select
    order_id,
    supplier_uscc,
    supplier_name,
    buyer_uscc,
    buyer_name,
    product,
    amount_yuan,
    order_date,
    _source_department,
    _source_file,
    cast(_ingested_at as date) as _delivered_on
from {{ source('std', 'ent_supply_orders') }}
