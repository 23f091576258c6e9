"""What the assets package gives the code location: landing specs, collection, std, governance, the
catalogue, the privacy scan and the publish zone (the dbt models come from orchestration.dbt)."""

from __future__ import annotations

import dagster as dg

from assets import (
    catalogue,
    clean,
    collect,
    freshness,
    govern,
    monitor,
    own_tables,
    privacy_scan,
    publish,
    resolve,
    share,
)
from lakehouse.registry import registry


def build() -> dg.Definitions:
    reg = registry()
    landing_specs, collect_assets = collect.build(reg)
    std_assets = clean.build(reg)
    resolution = resolve.build()
    govern_assets = govern.build(reg)
    catalogue_asset = catalogue.build(reg)
    publish_assets = publish.build()
    writers = {
        "raw": [k for a in collect_assets for k in a.keys],
        "std": [k for a in std_assets for k in a.keys],
        "quality": [k for a in govern_assets for k in a.keys if k.path[-1] == "problem_lists"],
        "publish": [k for a in publish_assets for k in a.keys],
        "catalogue": list(catalogue_asset.keys),
    }
    fresh = freshness.checks([*((collect.raw_key(ds), ds.update_cycle) for ds in reg.datasets), *publish.cycles()])
    return dg.Definitions(
        asset_checks=[fresh],
        schedules=[freshness.schedule(fresh)],
        assets=[
            *landing_specs,
            *collect_assets,
            *std_assets,
            resolution,
            *govern_assets,
            catalogue_asset,
            *monitor.build(reg),
            privacy_scan.build(),
            *publish_assets,
            *own_tables.specs(writers, reg.defaults.steward),
            share.share_extracts,
            share.sharing_statistics,
        ],
    )


defs = build()
landing_specs = [a for a in defs.assets if isinstance(a, dg.AssetSpec)]
