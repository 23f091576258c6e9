"""What the assets package gives the code location: landing specs, collection assets, the catalogue."""

from __future__ import annotations

import dagster as dg

from assets import catalogue, collect

landing_specs, collect_assets = collect.build()

defs = dg.Definitions(assets=[*landing_specs, *collect_assets, catalogue.build()])
