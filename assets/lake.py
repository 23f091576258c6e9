"""The lake: one root (a local folder or an object-store URI) holding Delta tables by zone.

Plain code, no Dagster: the orchestration resource hands a ``Lake`` to the assets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake

# ZSTD level 1: as fast to write as Snappy here, and smaller files.
WRITER = WriterProperties(compression="ZSTD", compression_level=1)
ZONES = ("raw", "std", "quarantine", "base", "theme", "topic", "publish", "share", "catalogue", "quality", "ops")


@dataclass(frozen=True)
class Lake:
    root: str
    storage_options: dict[str, str] = field(default_factory=dict)

    def uri(self, zone: str, name: str) -> str:
        if zone not in ZONES:
            raise ValueError(f"unknown zone {zone!r}; zones are {ZONES}")
        return f"{self.root.rstrip('/')}/{zone}/{name}"

    def table(self, zone: str, name: str) -> DeltaTable | None:
        uri = self.uri(zone, name)
        if not DeltaTable.is_deltatable(uri, storage_options=self.storage_options or None):
            return None
        return DeltaTable(uri, storage_options=self.storage_options or None)

    def read(self, zone: str, name: str, columns: list[str] | None = None) -> pl.DataFrame | None:
        dt = self.table(zone, name)
        if dt is None:
            return None
        return pl.from_arrow(dt.to_pyarrow_table(columns=columns))

    def row_count(self, zone: str, name: str) -> int | None:
        """Rows in the current version, from the Delta log's file statistics (no data read)."""
        dt = self.table(zone, name)
        if dt is None:
            return None
        adds = dt.get_add_actions(flatten=True)
        return sum(adds.column("num_records").to_pylist()) if adds.num_rows else 0

    def ensure(
        self,
        zone: str,
        name: str,
        schema: pa.Schema,
        partition_by: list[str] | None = None,
        stats_columns: list[str] | None = None,
    ) -> DeltaTable:
        """Create the table if it does not exist; ``stats_columns`` limits file statistics to those columns."""
        dt = self.table(zone, name)
        if dt is None:
            config = {"delta.dataSkippingStatsColumns": ",".join(stats_columns)} if stats_columns else None
            dt = DeltaTable.create(
                self.uri(zone, name),
                schema,
                partition_by=partition_by,
                mode="ignore",
                configuration=config,
                storage_options=self.storage_options or None,
            )
        return dt

    def _write(self, zone: str, name: str, data, mode: str, metadata: dict[str, str] | None, **kwargs) -> int:
        write_deltalake(
            self.uri(zone, name),
            data,
            mode=mode,
            storage_options=self.storage_options or None,
            writer_properties=WRITER,
            commit_properties=CommitProperties(custom_metadata=metadata) if metadata else None,
            **kwargs,
        )
        return self.table(zone, name).version()

    def append(
        self, zone: str, name: str, data, partition_by: list[str] | None = None, metadata: dict[str, str] | None = None
    ) -> int:
        """Append in one atomic commit; returns the new table version."""
        return self._write(zone, name, data, "append", metadata, partition_by=partition_by)

    def replace_where(self, zone: str, name: str, data, column: str, value: str) -> int:
        """Replace the rows where ``column = value`` (one dataset's partition), atomically."""
        if self.table(zone, name) is None:
            return self._write(zone, name, data, "append", None, partition_by=[column])
        return self._write(zone, name, data, "overwrite", None, predicate=f"{column} = '{value}'")

    def overwrite(self, zone: str, name: str, data, metadata: dict[str, str] | None = None) -> int:
        """Replace the current version (earlier versions stay readable by time travel)."""
        return self._write(zone, name, data, "overwrite", metadata, schema_mode="overwrite")
