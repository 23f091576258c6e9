"""What the assets package gives the code location: landing specs, collection assets, the catalogue."""

from __future__ import annotations

import dagster as dg

from assets import catalogue, clean, collect, govern, privacy_scan

landing_specs, collect_assets = collect.build()

std_assets = clean.build()

defs = dg.Definitions(
    assets=[*landing_specs, *collect_assets, *std_assets, *govern.build(), catalogue.build(), privacy_scan.build()]
)
