-- 产业链行业不明企业（待核实清单）: the enterprises on a supply-chain link whose industry the master does not
-- know — for a steward to resolve. The master knows a firm's industry from its registration (市场监管), records
-- quarantined for their identity included (entity resolution); a firm left here has no registration the warehouse
-- could match, or one without an industry code. Each is listed with its links, their value and why.

with sides as (
    select
        supplier_uscc as uscc,
        'supplier' as side,
        orders,
        amount_yuan
    from {{ ref('topic_chain_edges') }}
    where supplier_industry is null
    union all
    select
        buyer_uscc as uscc,
        'buyer' as side,
        orders,
        amount_yuan
    from {{ ref('topic_chain_edges') }}
    where buyer_industry is null
)

select
    s.uscc,
    m.name,
    {{ ordered_string_agg('s.side', "','", 's.side', distinct=true) }} as sides,
    count(*) as links,
    cast(sum(s.orders) as bigint) as orders,
    {{ exact_sum('s.amount_yuan') }} as amount_yuan,
    case
        when max(m.registration_source) is null then '无可匹配的市场监管登记（可能为外地企业或登记记录缺失）'
        else '登记信息无行业代码'
    end as reason
from sides as s
left join {{ ref('base_enterprise') }} as m on s.uscc = m.uscc
group by s.uscc, m.name
