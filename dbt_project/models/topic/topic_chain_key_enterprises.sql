-- 产业链链主企业: per chain and industry, enterprises ranked by how much of the local chain's trade they
-- carry (sales to and purchases from local firms) and by how many partners they have. A firm is a 链主
-- when its share of its industry's chain trade is at least var('chain_leader_min_share').

with trade as (
    select
        supplier_uscc as uscc,
        amount_yuan,
        buyer_uscc as partner
    from {{ ref('topic_chain_edges') }}
    union all
    select
        buyer_uscc,
        amount_yuan,
        supplier_uscc
    from {{ ref('topic_chain_edges') }}
),

per_firm as (
    select
        uscc,
        {{ exact_sum('amount_yuan') }} as chain_trade_yuan,
        count(distinct partner) as partners
    from trade
    group by uscc
),

placed as (
    select
        f.uscc,
        m.name,
        m.industry_code,
        c.chain_id,
        c.chain_role,
        f.chain_trade_yuan,
        f.partners,
        f.chain_trade_yuan / cast(sum(cast(f.chain_trade_yuan as decimal(38, 6))) over (
            partition by c.chain_id, m.industry_code
        ) as double) as industry_share,
        cast(row_number() over (
            partition by c.chain_id, m.industry_code order by f.chain_trade_yuan desc, f.uscc asc
        ) as bigint) as rank_in_industry
    from per_firm as f
    inner join {{ ref('base_enterprise') }} as m on f.uscc = m.uscc
    inner join {{ ref('industry_codes') }} as c on m.industry_code = c.industry_code
)

select
    *,
    industry_share >= {{ var('chain_leader_min_share') }} as is_chain_leader
from placed
