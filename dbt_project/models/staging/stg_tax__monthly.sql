select
    uscc,
    taxpayer_name,
    period,
    filing_type,
    revenue as revenue_yuan,
    tax_paid as tax_paid_yuan,
    filed_on,
    _source_department,
    _source_file,
    cast(_ingested_at as date) as _delivered_on
from {{ std_rows('tax_monthly') }} as std_rows
