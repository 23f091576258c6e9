-- 产业链完整度: for every link a chain should have (seed chain_links), whether local enterprises trade
-- along it, how many, and how much; `chain_completeness` is the share of the chain's links present.

with links as (
    select * from {{ ref('chain_links') }}
),

observed as (
    select
        supplier_industry,
        buyer_industry,
        count(*) as relations,
        count(distinct supplier_uscc) as suppliers,
        count(distinct buyer_uscc) as buyers,
        {{ exact_sum('amount_yuan') }} as amount_yuan
    from {{ ref('topic_chain_edges') }}
    group by supplier_industry, buyer_industry
),

per_link as (
    select
        l.chain_id,
        l.chain_name_zh,
        l.upstream_industry,
        l.downstream_industry,
        l.link_name_zh,
        coalesce(o.relations, 0) as relations,
        coalesce(o.suppliers, 0) as suppliers,
        coalesce(o.buyers, 0) as buyers,
        coalesce(o.amount_yuan, 0) as amount_yuan,
        coalesce(o.relations, 0) > 0 as link_present
    from links as l
    left join observed as o
        on l.upstream_industry = o.supplier_industry and l.downstream_industry = o.buyer_industry
)

select
    *,
    avg(case when link_present then 1.0e0 else 0.0e0 end) over (partition by chain_id) as chain_completeness
from per_link
