"""Emit lineage for every run the daemon sees finish, and keep re-sending what was spooled."""

import dagster as dg

from orchestration.lineage.emit import emit_run, http_transport
from orchestration.settings import settings


def _emit(context: dg.RunStatusSensorContext) -> None:
    # The asset graph of the code location this sensor belongs to, as the daemon loaded it.
    report = emit_run(context.instance, context.dagster_run.run_id, context.repository_def.asset_graph, settings())
    context.log.info(f"run {context.dagster_run.run_id}: {report.summary()}")


def _status_sensor(status: dg.DagsterRunStatus) -> dg.RunStatusSensorDefinition:
    @dg.run_status_sensor(
        name=f"lineage_on_{status.value.lower()}",
        run_status=status,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=10,
        description=f"Emits OpenLineage events for every run that ends {status.value}.",
    )
    def _sensor(context: dg.RunStatusSensorContext):
        _emit(context)

    return _sensor


@dg.sensor(
    name="lineage_spool",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-sends OpenLineage events spooled while the endpoint (OPENLINEAGE_URL) was down.",
)
def lineage_spool(context: dg.SensorEvaluationContext):
    http = http_transport(settings())
    if http is None or not http.pending:
        return dg.SkipReason("nothing spooled" if http else "OPENLINEAGE_URL is not set")
    report = http.flush()
    return dg.SkipReason(
        f"re-sent {report.resent} spooled event(s); {http.pending} still waiting"
        + (f" ({report.error})" if report.error else "")
    )


defs = dg.Definitions(
    sensors=[
        *(
            _status_sensor(s)
            for s in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
        ),
        lineage_spool,
    ]
)
