"""The shucang code location: composes what each package exports and applies shared policy once."""

from __future__ import annotations

import dagster as dg

import assets.defs
import orchestration.dbt.assets
import orchestration.jobs
import orchestration.lineage.sensors
import sensors.alerts
import sensors.defs
import sensors.exchange
from orchestration.instance import celery_workers
from orchestration.resources import resources


def build(fresh: bool = False) -> dg.Definitions:
    """Everything the code location holds; ``fresh`` builds it again, for another dbt project (a modeler's
    copy, ``$SHUCANG_DBT_PROJECT_DIR``)."""
    return dg.Definitions.merge(
        assets.defs.build() if fresh else assets.defs.defs,
        dg.Definitions(assets=orchestration.dbt.assets.build()),
        sensors.defs.defs,
        sensors.exchange.defs,
        sensors.alerts.defs,
        orchestration.lineage.sensors.defs,
        orchestration.jobs.defs,
        dg.Definitions(resources=resources(), executor=celery_workers.executor()),
    )


defs = build()
