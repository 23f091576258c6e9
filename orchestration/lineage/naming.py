"""Dataset names: one namespace per storage location, names by zone and dataset.

The same dataset has the same (namespace, name) whoever produces or consumes it, because both sides
derive it from the asset key and the storage roots here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lakehouse.lake import ZONES, Lake
from lakehouse.registry import Registry
from orchestration import keys

PRODUCER = "https://github.com/shucang/shucang/tree/main/orchestration/lineage"
DEFAULT_JOB_NAMESPACE = "shucang"


def storage_uri(root: str) -> str:
    """A local folder (the landing area) becomes a file:// URI; an object-store URI stays as it is."""
    return root if "://" in root else Path(root).resolve().as_uri()


@dataclass(frozen=True)
class DatasetRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}::{self.name}"


@dataclass(frozen=True)
class Naming:
    lake: Lake
    landing_root: str
    warehouse_path: str
    registry: Registry
    job_namespace: str = DEFAULT_JOB_NAMESPACE
    # where the models that are not lake tables (the staging views) live: the DuckDB file by default; on Sail
    # its session (``sail://embedded`` or the cluster's host:port)
    warehouse_namespace: str | None = None

    def dataset(self, key_path: list[str]) -> DatasetRef:
        """The dataset an asset (by its key's path) reads or writes."""
        return self.table(*keys.table(key_path))

    def table(self, zone: str, name: str) -> DatasetRef:
        """The dataset of a table by zone and name (``raw``, ``tax_monthly``), or of a landing folder."""
        if zone == "landing":
            # a source's landing folder, as the registry names it: e.g. amr/registration
            return DatasetRef(storage_uri(self.landing_root), self.registry.dataset(name).landing)
        if zone in ZONES:
            return DatasetRef(self.lake.location, f"{zone}/{name}")
        # models that live only in the DuckDB warehouse
        namespace = self.warehouse_namespace or f"duckdb://{Path(self.warehouse_path).resolve()}"
        return DatasetRef(namespace, _dotted(zone, name))

    def short(self, namespace: str, name: str) -> str:
        """A readable label: lake tables by zone/name, landing folders as landing:<folder>, models that live
        only in the warehouse (DuckDB's file, Sail's session) as warehouse:<schema.table>."""
        if namespace == self.lake.location:
            return name
        if namespace == storage_uri(self.landing_root):
            return f"landing:{name}"
        if namespace == self.table("warehouse", name).namespace:  # a model that lives only in the warehouse
            return f"warehouse:{name}"
        return f"{namespace}::{name}"

    @staticmethod
    def job_name(key_path: list[str]) -> str:
        return _dotted(*keys.table(key_path))


def _dotted(zone: str, name: str) -> str:
    """zone and table as one dotted name (``raw.tax_monthly``): a job, or a table of the DuckDB warehouse."""
    return ".".join([zone, *name.split("/")])
