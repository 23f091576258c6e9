"""A dbt-duckdb plugin that loads a lake Delta table as a dbt source, at a pinned version when asked.

Sources name a lake table in ``meta`` (``zone``, ``dataset``); the plugin resolves it under the lake root
the settings give (``LAKE_ROOT``/``LAKE_STORAGE_OPTIONS`` or ``SHUCANG_DATA_DIR``), so the same project runs
against a local folder or an object store. ``SHUCANG_DELTA_PINS`` (JSON ``{"std.amr_registration": 3}``)
pins versions: the Dagster asset sets it to the versions it read, which makes a run reproducible. No
DuckDB extension is involved: ``deltalake`` hands DuckDB an Arrow dataset (ARCHITECTURE.md §6).

dbt-duckdb's own ``delta`` plugin is close, but ignores a pin to version 0 (``if as_of_version:``) and
needs the full table path in every source.
"""

from __future__ import annotations

import json
import os
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import SourceConfig

PINS_ENV = "SHUCANG_DELTA_PINS"


def pins(environ: dict[str, str] | None = None) -> dict[str, int]:
    raw = (os.environ if environ is None else environ).get(PINS_ENV, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{PINS_ENV} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict) or not all(isinstance(v, int) for v in value.values()):
        raise ValueError(f"{PINS_ENV} must map 'zone.dataset' to an integer Delta version, got {raw!r}")
    return value


class Plugin(BasePlugin):
    def initialize(self, config: dict[str, Any]) -> None:
        from orchestration.settings import settings

        self.lake = settings().lake()

    def load(self, source_config: SourceConfig):
        zone = source_config.get("zone", "std")
        dataset = source_config.get("dataset", source_config.identifier)
        dt = self.lake.table(zone, dataset)
        if dt is None:
            raise FileNotFoundError(
                f"dbt source {source_config.name}.{source_config.identifier}: no Delta table at "
                f"{self.lake.uri(zone, dataset)} — materialise {zone}/{dataset} first"
            )
        pinned = pins().get(f"{zone}.{dataset}")
        if pinned is not None:
            dt.load_as_version(pinned)
        return dt.to_pyarrow_dataset()

    def default_materialization(self) -> str:
        return "table"
