-- 设备利用主题库: per device and day, from 15-minute telemetry.
--   availability  = running samples ÷ samples not in planned stop (run + idle + fault)
--   performance   = mean power while running ÷ rated power (the register's 额定功率), capped at 1
--   quality       = 1 — the telemetry carries no reject counts; documented, not invented
--   OEE           = availability × performance × quality
-- Days are Beijing dates (ts is stored in UTC).

with readings as (
    select
        device_id,
        cast(ts + interval 8 hour as date) as day,
        state,
        power_kw,
        output_count
    from {{ ref('stg_ent__telemetry') }}
),

daily as (
    select
        device_id,
        day,
        count(*) as samples,
        count(*) filter (where state = 'run') as run_samples,
        count(*) filter (where state = 'idle') as idle_samples,
        count(*) filter (where state = 'fault') as fault_samples,
        count(*) filter (where state = 'stop') as stop_samples,
        {{ exact_avg("case when state = 'run' then power_kw end") }} as mean_run_power_kw,
        max(output_count) - min(output_count) as output_count
    from readings
    group by device_id, day
)

select
    d.device_id,
    e.uscc,
    d.day,
    d.samples,
    d.run_samples,
    d.idle_samples,
    d.fault_samples,
    d.stop_samples,
    d.output_count,
    e.rated_power_kw,
    cast(d.run_samples as double) / nullif(d.run_samples + d.idle_samples + d.fault_samples, 0) as availability,
    least(d.mean_run_power_kw / nullif(e.rated_power_kw, 0), 1.0e0) as performance,
    cast(1.0 as double) as quality,
    cast(d.run_samples as double) / nullif(d.run_samples + d.idle_samples + d.fault_samples, 0)
    * coalesce(least(d.mean_run_power_kw / nullif(e.rated_power_kw, 0), 1.0e0), 0) as oee
from daily as d
left join {{ ref('stg_ent__equipment') }} as e on d.device_id = e.device_id
