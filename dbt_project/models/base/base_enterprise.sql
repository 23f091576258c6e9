-- 企业主数据（基础库）: one golden record per 统一社会信用代码, whichever department knows the firm.
-- Survivorship, attribute by attribute, each with its provenance (department and delivery date):
--   name           市场监管登记 > 税务 > 统计 > 电力户名 > 自然资源权利人 > 生态环境 > 企业填报 (latest delivery first)
--   region_code    市场监管登记 > 统一社会信用代码第3–8位（登记管理机关行政区划码）
--   industry_code, address, established_on, status, registered_capital: 市场监管登记 only
--   scale_type     统计（在规上名录即为规上）> 市场监管登记

with registration as (
    select * from {{ ref('stg_amr__registration') }}
),

name_candidates as (
    -- one row per enterprise, name and department, with its latest delivery: what the pick below ranks (the
    -- same pick as over every delivered row, on a fraction of the rows)
    select
        uscc,
        name,
        _source_department,
        max(_delivered_on) as _delivered_on,
        1 as priority
    from registration
    group by uscc, name, _source_department
    union all
    select
        uscc,
        taxpayer_name as name,
        _source_department,
        max(_delivered_on) as _delivered_on,
        2 as priority
    from {{ ref('stg_tax__monthly') }}
    group by uscc, taxpayer_name, _source_department
    union all
    select
        uscc,
        name,
        _source_department,
        max(_delivered_on) as _delivered_on,
        3 as priority
    from {{ ref('stg_stats__annual') }}
    group by uscc, name, _source_department
    union all
    select
        uscc,
        account_name as name,
        _source_department,
        max(_delivered_on) as _delivered_on,
        4 as priority
    from {{ ref('stg_power__monthly') }}
    group by uscc, account_name, _source_department
    union all
    select
        uscc,
        holder_name as name,
        _source_department,
        max(_delivered_on) as _delivered_on,
        5 as priority
    from {{ ref('stg_land__parcels') }}
    group by uscc, holder_name, _source_department
    union all
    select
        uscc,
        name,
        _source_department,
        max(_delivered_on) as _delivered_on,
        6 as priority
    from {{ ref('stg_eco__emissions') }}
    group by uscc, name, _source_department
    union all
    select
        uscc,
        name,
        _source_department,
        max(_delivered_on) as _delivered_on,
        7 as priority
    from {{ ref('stg_ent__production') }}
    group by uscc, name, _source_department
),

named as (
    select
        uscc,
        name,
        _source_department as name_source,
        _delivered_on as name_delivered_on,
        row_number() over (partition by uscc order by priority asc, _delivered_on desc, name asc) as pick
    from name_candidates
    where uscc is not null and name is not null
),

seen as (
    select
        uscc,
        _source_department
    from name_candidates
    where uscc is not null
    union
    select
        uscc,
        _source_department
    from {{ ref('stg_ent__equipment') }}
    where uscc is not null
    union
    select
        supplier_uscc,
        _source_department
    from {{ ref('stg_ent__supply_orders') }}
    where supplier_uscc is not null
    union
    select
        buyer_uscc,
        _source_department
    from {{ ref('stg_ent__supply_orders') }}
    where buyer_uscc is not null
),

seen_by as (
    select
        uscc,
        {{ ordered_string_agg('_source_department', "','", '_source_department') }} as source_departments,
        count(*) as source_count
    from seen
    group by uscc
),

above_scale as (
    select
        uscc,
        max(_delivered_on) as delivered_on
    from {{ ref('stg_stats__annual') }}
    group by uscc
)

select
    s.uscc,
    n.name,
    n.name_source,
    n.name_delivered_on,
    r.former_names,
    coalesce(r.region_code, substr(s.uscc, 3, 6)) as region_code,
    case when r.region_code is not null then 'amr' else 'uscc' end as region_code_source,
    r.industry_code,
    case when r.industry_code is not null then 'amr' end as industry_code_source,
    case
        when a.uscc is not null then '规上'
        else r.scale_type
    end as scale_type,
    case when a.uscc is not null then 'stats' when r.scale_type is not null then 'amr' end as scale_type_source,
    r.status,
    r.established_on,
    r.registered_capital_yuan,
    r.address,
    case when r.uscc is not null then 'amr' end as registration_source,
    r._delivered_on as registration_delivered_on,
    s.source_departments,
    s.source_count
from seen_by as s
left join named as n on s.uscc = n.uscc and n.pick = 1
left join registration as r on s.uscc = r.uscc
left join above_scale as a on s.uscc = a.uscc
