"""Jobs a steward launches by name, and the selections the CLI and the demo materialise.

Raw and std of periodic datasets are partitioned by month, year or day (``orchestration.partitions``), and a
Dagster job runs one partitions definition: the full refresh, every collection and every std build are
therefore selections, materialised as the runs ``orchestration.runs`` plans — in the UI, "Materialize all"
on the asset graph launches the same as a backfill. The dbt models and publication are one job.
"""

from __future__ import annotations

import dagster as dg

SELECTIONS = {
    # everything but the per-request shares (built when a request is approved)
    "shucang_all": dg.AssetSelection.all() - dg.AssetSelection.groups("landing", "share"),
    "collect_all": dg.AssetSelection.groups("raw"),
    "std_all": dg.AssetSelection.groups("std"),
}

model_all = dg.define_asset_job(
    "model_all",
    selection=dg.AssetSelection.groups("staging", "parameters", "base", "theme", "topic", "publish"),
    description="Rebuild the dbt models (one dbt build, std versions pinned) and publish the public ones through "
    "their gates.",
)

defs = dg.Definitions(jobs=[model_all])
