-- 产业链图谱（边）: the upstream → downstream graph of local enterprises from their supply orders.
select
    r.supplier_uscc,
    s.name as supplier_name,
    s.industry_code as supplier_industry,
    r.buyer_uscc,
    b.name as buyer_name,
    b.industry_code as buyer_industry,
    r.orders,
    r.amount_yuan,
    r.first_order_on,
    r.last_order_on
from {{ ref('theme_supply_relations') }} as r
left join {{ ref('base_enterprise') }} as s on r.supplier_uscc = s.uscc
left join {{ ref('base_enterprise') }} as b on r.buyer_uscc = b.uscc
