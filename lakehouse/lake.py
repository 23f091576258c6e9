"""The lake: one root (a local folder or an object-store URI) holding Delta tables by zone.

The one door to storage: every package reads and writes the lake through a ``Lake`` — Delta tables by
zone and name, and the few plain files beside them (the catalogue export, problem lists, lineage events) —
so none builds a lake path itself, and a local folder and an object store behave alike. Plain code, no
Dagster: ``Settings.lake()`` and the orchestration resource hand a ``Lake`` to everything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake

# ZSTD level 1: as fast to write as Snappy here, and smaller files.
WRITER = WriterProperties(compression="ZSTD", compression_level=1)
# The catalogue's JSON export (in the catalogue zone): what readers without Dagster or Delta open.
CATALOGUE_EXPORT = "catalogue.json"
ZONES = ("raw", "std", "quarantine", "base", "theme", "topic", "publish", "share", "catalogue", "quality", "ops")
# Zones holding data as delivered, rows set aside, consumers' extracts and operations records: on a local
# lake their folders are owner-only (0700), so no other account on the machine reads them. The published
# zones stay readable by the components downstream.
PRIVATE_ZONES = frozenset({"raw", "std", "quarantine", "share", "ops"})


def s3_store(uri: str, storage_options: Mapping[str, str]):
    """obstore's S3 store at ``uri`` (``s3://bucket/prefix``), from storage options as delta-rs names them
    (``AWS_ENDPOINT_URL``, keys, region, ``AWS_ALLOW_HTTP``)."""
    from obstore.store import S3Store

    options = {k.lower(): v for k, v in storage_options.items()}
    allow_http = options.pop("aws_allow_http", "").lower() == "true"
    return S3Store.from_url(
        uri.rstrip("/"),
        config={k: v for k, v in options.items() if k.startswith("aws_")},
        client_options={"allow_http": allow_http},
    )


@dataclass(frozen=True)
class Lake:
    root: str
    storage_options: dict[str, str] = field(default_factory=dict)

    def _seal(self, zone: str) -> None:
        """A private zone's folder is created owner-only, and made so if an older run left it open."""
        if zone not in PRIVATE_ZONES or not self.is_local:
            return
        folder = Path(self.root.removeprefix("file://")) / zone
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if folder.stat().st_mode & 0o077:
            folder.chmod(0o700)

    def uri(self, zone: str, name: str) -> str:
        """Where a table (or a file) of a zone lives: the root joined with ``zone/name``."""
        if zone not in ZONES:
            raise ValueError(f"unknown zone {zone!r}; zones are {ZONES}")
        parts = name.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"{zone}/{name}: a lake name is relative and plain (no empty, '.' or '..' part)")
        return f"{self.root.rstrip('/')}/{zone}/{name}"

    @property
    def is_local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file://")

    @property
    def location(self) -> str:
        """The root as a URI (a local folder becomes file://…): the lineage namespace of every lake table."""
        return Path(self.root.removeprefix("file://")).resolve().as_uri() if self.is_local else self.root

    # --- plain files beside the tables (JSON exports, spreadsheets, event logs) -------------------------
    @cached_property
    def _fs(self) -> tuple[pafs.FileSystem, str]:
        if self.is_local:
            return pafs.LocalFileSystem(), str(Path(self.root.removeprefix("file://")).resolve())
        if self.root.startswith("s3://"):
            return s3_filesystem(self.storage_options), self.root.removeprefix("s3://")
        fs, base = pafs.FileSystem.from_uri(self.root)
        return fs, base

    def _path(self, zone: str, name: str) -> str:
        self.uri(zone, name)  # validates zone and name
        fs_base = self._fs[1]
        return f"{fs_base.rstrip('/')}/{zone}/{name}"

    def write_bytes(self, zone: str, name: str, data: bytes) -> str:
        """Write one file (replacing it); returns its URI."""
        fs, path = self._fs[0], self._path(zone, name)
        self._seal(zone)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(path) as out:
            out.write(data)
        return self.uri(zone, name)

    def read_bytes(self, zone: str, name: str) -> bytes | None:
        """A file's content, or None when it does not exist."""
        fs, path = self._fs[0], self._path(zone, name)
        if fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with fs.open_input_stream(path) as src:
            return src.read()

    def presign(self, zone: str, name: str, seconds: int) -> str | None:
        """A URL that reads one file of the lake for ``seconds`` without credentials (an S3 query signature, as
        the store checks it), or None when the lake is not on S3 — a local folder has no such URL."""
        if not self.root.startswith("s3://"):
            return None
        import datetime as dt

        import obstore

        self.uri(zone, name)  # validates zone and name
        return obstore.sign(self._signer, "GET", f"{zone}/{name}", dt.timedelta(seconds=seconds))

    @cached_property
    def _signer(self):
        """The lake's root as obstore's S3 store (made once: a query signs a URL per file)."""
        return s3_store(self.root, self.storage_options)

    def table_names(self, zone: str) -> list[str]:
        """The Delta tables directly in a zone (a folder holding a ``_delta_log`` with a commit), sorted. An
        object store may keep a deleted table's folders (a filer's directories): an empty log is no table."""
        self.uri(zone, "x")  # validates the zone
        fs, base = self._fs
        try:
            infos = fs.get_file_info(pafs.FileSelector(f"{base.rstrip('/')}/{zone}", recursive=False))
        except FileNotFoundError:
            return []
        folders = [i.path for i in infos if i.type == pafs.FileType.Directory]
        return sorted(f.rsplit("/", 1)[-1] for f in folders if self._has_commit(fs, f"{f}/_delta_log"))

    @staticmethod
    def _has_commit(fs, log: str) -> bool:
        try:
            entries = fs.get_file_info(pafs.FileSelector(log, recursive=False))
        except FileNotFoundError:
            return False
        return any(e.type == pafs.FileType.File and e.base_name.endswith(".json") for e in entries)

    def list_files(self, zone: str, folder: str, suffix: str = "") -> list[str]:
        """Names (relative to the zone) of the files directly in ``zone/folder``, sorted."""
        fs, path = self._fs[0], self._path(zone, folder)
        try:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
        except FileNotFoundError:
            return []
        return sorted(
            f"{folder}/{i.base_name}" for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(suffix)
        )

    def local_path(self, zone: str, name: str) -> Path | None:
        """The file's path on this machine when the lake is a local folder (to stream it), else None."""
        return Path(self._path(zone, name)) if self.is_local else None

    def delete(self, zone: str, name: str) -> bool:
        """Remove a table or folder with everything in it; False when there was nothing."""
        fs, path = self._fs[0], self._path(zone, name)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            return False
        if info.type == pafs.FileType.Directory:
            fs.delete_dir(path)
        else:
            fs.delete_file(path)
        return True

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

    def scan(self, zone: str, name: str) -> pl.LazyFrame | None:
        """A lazy scan of a table's current version: a ``head`` reads the first pages only, not whole files."""
        if self.table(zone, name) is None:
            return None
        return pl.scan_delta(self.uri(zone, name), storage_options=self.storage_options or None)

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
            self._seal(zone)
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
        self._seal(zone)
        # the table loaded once: the writer works from it and it holds the version committed afterwards (loading
        # a table reads its log: ~15 ms each, twice per write before)
        table = self.table(zone, name)
        write_deltalake(
            table if table is not None else self.uri(zone, name),
            data,
            mode=mode,
            storage_options=self.storage_options or None,
            writer_properties=WRITER,
            commit_properties=CommitProperties(custom_metadata=metadata) if metadata else None,
            **kwargs,
        )
        return (table if table is not None else self.table(zone, name)).version()

    def append(
        self,
        zone: str,
        name: str,
        data,
        partition_by: list[str] | None = None,
        metadata: dict[str, str] | None = None,
        schema_mode: str | None = None,
    ) -> int:
        """Append in one atomic commit; returns the new table version. ``schema_mode="merge"`` lets a table
        gain columns (older rows read them as null)."""
        extra = {"schema_mode": schema_mode} if schema_mode else {}
        return self._write(zone, name, data, "append", metadata, partition_by=partition_by, **extra)

    def replace_where(
        self, zone: str, name: str, data, column: str, value: str, metadata: dict[str, str] | None = None
    ) -> int:
        """Replace the rows where ``column = value`` (one dataset's partition), atomically."""
        if self.table(zone, name) is None:
            return self._write(zone, name, data, "append", metadata, partition_by=[column])
        return self._write(zone, name, data, "overwrite", metadata, predicate=f"{column} = '{value}'")

    def overwrite_where(
        self, zone: str, name: str, data, predicate: str, metadata: dict[str, str] | None = None
    ) -> int:
        """Replace the rows matching ``predicate`` (a SQL condition) with ``data``, atomically; every row
        of ``data`` must match it. Creates the table when there is none."""
        if self.table(zone, name) is None:
            return self._write(zone, name, data, "append", metadata)
        return self._write(zone, name, data, "overwrite", metadata, predicate=predicate)

    def commits(self, zone: str, name: str, limit: int | None = None) -> list[dict]:
        """The table's commit records, newest first (each with ``version`` and its custom metadata keys);
        empty when there is no table."""
        table = self.table(zone, name)
        return table.history(limit) if table is not None else []

    def overwrite(
        self,
        zone: str,
        name: str,
        data,
        metadata: dict[str, str] | None = None,
        configuration: dict | None = None,
        partition_by: list[str] | None = None,
    ) -> int:
        """Replace the current version (earlier versions stay readable by time travel). ``configuration``:
        Delta table properties (e.g. ``delta.enableChangeDataFeed``); ``partition_by``: the table's
        partition columns from this version on (none: unpartitioned)."""
        extra = {"configuration": configuration} if configuration else {}
        return self._write(
            zone, name, data, "overwrite", metadata, schema_mode="overwrite", partition_by=partition_by, **extra
        )


def s3_filesystem(options: dict[str, str]) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem from the storage options delta-rs takes (``AWS_ENDPOINT_URL``, keys, region,
    ``AWS_ALLOW_HTTP``), so the files beside the tables reach the same store as the tables."""
    o = {k.upper(): v for k, v in options.items()}
    endpoint = o.get("AWS_ENDPOINT_URL") or o.get("AWS_ENDPOINT")
    scheme = None
    if endpoint and "://" in endpoint:
        scheme, endpoint = endpoint.split("://", 1)
    return pafs.S3FileSystem(
        access_key=o.get("AWS_ACCESS_KEY_ID"),
        secret_key=o.get("AWS_SECRET_ACCESS_KEY"),
        session_token=o.get("AWS_SESSION_TOKEN"),
        region=o.get("AWS_REGION") or o.get("AWS_DEFAULT_REGION") or "us-east-1",
        endpoint_override=endpoint,
        scheme=scheme or ("http" if o.get("AWS_ALLOW_HTTP", "").lower() == "true" else "https"),
    )
