"""Dagster resources: the lake, the landing area and the DuckDB warehouse, configured from settings."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from lakehouse.lake import Lake
from orchestration.dbt.dagster_dbt_private import DbtResource
from orchestration.dbt.project import project
from orchestration.settings import Settings, settings
from privacy import keys
from privacy.audit import AuditLog
from privacy.keys import KeyRing

# Everything that opens the DuckDB file runs in this pool; dagster.yaml limits every pool to 1.
WAREHOUSE_POOL = "duckdb_warehouse"

# Steps off the path from a delivery to its publication (governance reports, the catalogue, 归集 status,
# the privacy scan) run after the others that are ready in the same run, so a delivery reaches the
# publish zone first.
BACKGROUND = {"dagster/priority": "-1"}


class LakeResource(dg.ConfigurableResource):
    """Root of the Delta lake: a local folder or an object-store URI."""

    root: str
    storage_options: dict[str, str] = Field(default_factory=dict)

    def lake(self) -> Lake:
        return Lake(self.root, dict(self.storage_options))


class LandingResource(dg.ConfigurableResource):
    """Where departments drop files, and where refused files are moved with their reason."""

    landing_root: str  # the folder (with a bucket: its local mirror)
    rejected_root: str
    settle_seconds: float = 0.0  # a file modified more recently than this is still being written: it waits
    bucket: str | None = None  # s3://bucket/prefix departments upload to, mirrored into landing_root
    bucket_storage_options: dict[str, str] = {}

    def mirror(self):
        """The bucket's mirror (``assets.ingest.bucket``), or None when landing is a folder."""
        from assets.ingest.bucket import Mirror

        if not self.bucket:
            return None
        return Mirror(self.bucket, Path(self.landing_root), dict(self.bucket_storage_options))


class WarehouseResource(dg.ConfigurableResource):
    """Where the dbt models are computed and read from: the DuckDB file (a rebuildable cache, never read
    downstream), or — on the Sail target — the lake's base/theme/topic zones, read through an in-memory DuckDB
    that names them as the file would."""

    path: str
    target: str = "local"  # the dbt target: local (DuckDB) or sail
    lake_root: str = ""  # on Sail: the lake the models are written to
    lake_storage_options: dict[str, str] = Field(default_factory=dict)

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if self.target == "sail":
            from orchestration.dbt import sail
            from orchestration.dbt.project import manifest

            return sail.connect(Lake(self.lake_root, dict(self.lake_storage_options)), manifest(project()))
        return duckdb.connect(
            self.path,
            read_only=read_only,
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
        )


class PrivacyResource(dg.ConfigurableResource):
    """Pseudonymisation keys (a key file outside the repository and the lake, or $SHUCANG_PSEUDONYM_KEYS)
    and the audit log of privileged operations."""

    key_file: str
    audit_log: str

    def audit(self) -> AuditLog:
        return AuditLog(Path(self.audit_log))

    def key_ring(self) -> KeyRing:
        return keys.load(self.audit(), Path(self.key_file))


class ExchangeResource(dg.ConfigurableResource):
    """The exchange: the request folder (inbox/, filed/, refused/), consumer profiles, the ledger, and the
    sharing service's address written into consumers' profiles."""

    folder: str
    endpoint: str
    audit_log: str  # where the ledger anchors its head

    def exchange(self, lake: Lake):
        from exchange.service import Exchange

        return Exchange(lake, Path(self.folder), self.endpoint, audit_log=Path(self.audit_log))


def resources(s: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    s = s or settings()
    return {
        "lake": LakeResource(root=s.lake_root, storage_options=s.storage_options),
        "landing": LandingResource(
            landing_root=str(s.landing_root),
            rejected_root=str(s.rejected_root),
            settle_seconds=s.settle_seconds,
            bucket=s.landing_bucket,
            bucket_storage_options=s.landing_storage_options,
        ),
        "warehouse": WarehouseResource(
            path=str(s.warehouse_path),
            target=s.dbt_target,
            lake_root=s.lake_root,
            lake_storage_options=s.storage_options,
        ),
        "privacy": PrivacyResource(key_file=str(s.key_file), audit_log=str(s.audit_log)),
        "exchange": ExchangeResource(
            folder=str(s.exchange_dir), endpoint=s.sharing_endpoint, audit_log=str(s.audit_log)
        ),
        "dbt": DbtResource(project_dir=project(), dbt_executable=str(Path(sys.executable).with_name("dbt"))),
    }
