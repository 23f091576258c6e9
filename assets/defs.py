"""What the assets package gives the code location: landing specs, collection, std, governance, the
catalogue, the privacy scan and the publish zone (the dbt models come from orchestration.dbt)."""

from __future__ import annotations

import dagster as dg

from assets import catalogue, clean, collect, govern, privacy_scan, publish, share


def build() -> dg.Definitions:
    landing_specs, collect_assets = collect.build()
    return dg.Definitions(
        assets=[
            *landing_specs,
            *collect_assets,
            *clean.build(),
            *govern.build(),
            catalogue.build(),
            privacy_scan.build(),
            *publish.build(),
            share.share_extracts,
            share.sharing_statistics,
        ]
    )


defs = build()
landing_specs = [a for a in defs.assets if isinstance(a, dg.AssetSpec)]
