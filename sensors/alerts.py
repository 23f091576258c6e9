"""The alerts sensor: failed runs and failed checks to the configured channels, once per incident, and a
notice when each recovers (``orchestration/alerts.py``)."""

import dagster as dg

from orchestration.alerts import Channels, tick


@dg.sensor(
    name="alerts",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends an alert for each failed run, failed check (gates, overdue datasets, rejected deliveries) "
    "to SHUCANG_ALERT_WEBHOOK and/or by e-mail (SHUCANG_ALERT_SMTP), once per incident, and a recovery notice.",
)
def alerts(context: dg.SensorEvaluationContext):
    channels = Channels.from_env()
    if not channels.configured:
        return dg.SkipReason("no alert channel configured (SHUCANG_ALERT_WEBHOOK, or SHUCANG_ALERT_SMTP and _MAIL_TO)")
    checks = context.repository_def.asset_graph.asset_check_keys
    cursor, sent, errors = tick(context.instance, checks, context.cursor, channels)
    context.update_cursor(cursor)
    for problem in errors:
        context.log.warning(f"alert not delivered (tried again next round): {problem}")
    if not sent:
        return dg.SkipReason(
            "no new incident and no recovery" + (f"; {len(errors)} delivery error(s)" if errors else "")
        )
    return dg.SkipReason(f"sent {len(sent)} alert(s): " + "; ".join(s["summary"] for s in sent)[:900])


defs = dg.Definitions(sensors=[alerts])
