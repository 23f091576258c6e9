-- 供应链关系主题库: one row per supplier → buyer pair, from the enterprises' orders.
select
    supplier_uscc,
    buyer_uscc,
    count(*) as orders,
    {{ exact_sum('amount_yuan') }} as amount_yuan,
    min(order_date) as first_order_on,
    max(order_date) as last_order_on,
    count(distinct product) as products
from {{ ref('stg_ent__supply_orders') }}
where supplier_uscc is not null and buyer_uscc is not null
group by supplier_uscc, buyer_uscc
