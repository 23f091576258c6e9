"""Asset keys: the zone, then the name the asset graph shows.

Dagster's asset graph labels a node with the last component of its key alone (dagster-io/dagster#25555,
#30901), so where two zones hold a table of the same name — a dataset's landing folder, its raw and its std
table; a model and its publication — the zones that repeat a name carry the zone in that last component too:
``landing/landing_tax_monthly``, ``raw/raw_tax_monthly``, ``std/tax_monthly`` (the dataset itself),
``topic/topic_mujun_evaluation`` and ``publish/publish_topic_mujun_evaluation``. Every other zone's names are
its own (models carry their layer already: ``stg_``, ``base_``, ``theme_``, ``topic_``).

``table`` reads a key back as the zone and the name of its table in the lake (or its landing folder's dataset).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

PREFIXED = ("landing", "raw", "publish")


def key(zone: str, name: str) -> dg.AssetKey:
    """The asset key of table ``name`` in ``zone``."""
    return dg.AssetKey([zone, f"{zone}_{name}" if zone in PREFIXED else name])


def table(asset_key: dg.AssetKey | Sequence[str]) -> tuple[str, str]:
    """(zone, table name) of an asset key: ``raw/raw_tax_monthly`` → ("raw", "tax_monthly")."""
    path = list(asset_key.path if isinstance(asset_key, dg.AssetKey) else asset_key)
    zone, name = path[0], "/".join(path[1:])
    if zone in PREFIXED:
        prefix = f"{zone}_"
        if not name.startswith(prefix):
            raise ValueError(f"{'/'.join(path)}: a {zone} asset's name starts with {prefix!r}")
        name = name[len(prefix) :]
    return zone, name
