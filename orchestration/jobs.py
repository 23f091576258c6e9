"""Jobs a steward launches by name."""

from __future__ import annotations

import dagster as dg

# Everything materialisable, in dependency order: the demo and a full refresh.
shucang_all = dg.define_asset_job(
    "shucang_all",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("landing", "share"),
    description="Everything but the per-request shares (built when a request is approved): collect, standardise, "
    "govern, model, publish, catalogue.",
)

collect_all = dg.define_asset_job(
    "collect_all",
    selection=dg.AssetSelection.groups("raw"),
    description="Collect every source into raw.",
)

std_all = dg.define_asset_job(
    "std_all",
    selection=dg.AssetSelection.groups("std"),
    description="Standardise every raw dataset into std.",
)

model_all = dg.define_asset_job(
    "model_all",
    selection=dg.AssetSelection.groups("staging", "parameters", "base", "theme", "topic", "publish"),
    description="Rebuild the dbt models (one dbt build, std versions pinned) and publish the public ones through "
    "their gates.",
)

defs = dg.Definitions(jobs=[shucang_all, collect_all, std_all, model_all])
