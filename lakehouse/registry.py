"""The source registry: ``sources.yaml`` loaded into validated, typed specs.

Everything that is alike across sources — collection assets, sensors, raw tables, catalogue entries —
is declared from these specs, so adding a source is editing YAML, not code.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from lakehouse import config
from lakehouse.config import Strict
from lakehouse.cycles import Cycle

REGISTRY_PATH = Path(__file__).with_name("sources.yaml")

LogicalType = Literal["string", "code", "date", "month", "timestamp", "decimal", "integer"]
ShareType = Literal["无条件共享", "有条件共享", "不予共享"]
OpenType = Literal["无条件开放", "有条件开放", "不予开放"]
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")


def _snake_case(v: str) -> str:
    if not _IDENT.match(v):
        raise ValueError(f"{v!r} must be lower snake_case")
    return v


Ident = Annotated[str, AfterValidator(_snake_case)]


class Department(Strict):
    name_zh: str
    name_en: str
    owner: str


class Defaults(Strict):
    steward: str
    classification: str
    grade: str
    role: str


_PERIOD_FORMS = {
    "day": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "month": re.compile(r"^\d{4}-\d{2}$"),
    "year": re.compile(r"^\d{4}$"),
}
DUE_DAYS = {"day": 1, "month": 15, "year": 90}  # default filing deadline: days after the period ends


class Period(Strict):
    """How a periodic dataset is delivered: one file (or more) per period, named with it, due ``due_days``
    after the period ends. ``since``/``until`` bound the periods the 归集 agreement expects (default: from
    the first period received, open-ended)."""

    granularity: Literal["day", "month", "year"]
    from_filename: str
    column: Ident | None = None  # the column whose value places a row in its period (std partitions by it)
    due_days: int | None = Field(default=None, ge=0)
    since: str | None = None
    until: str | None = None

    @field_validator("from_filename")
    @classmethod
    def _one_group(cls, v: str) -> str:
        if re.compile(v).groups != 1:
            raise ValueError("needs exactly one capture group for the period")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> Period:
        for name in ("since", "until"):
            v = getattr(self, name)
            if v is not None and not _PERIOD_FORMS[self.granularity].match(v):
                raise ValueError(f"{name} {v!r} is not a {self.granularity} period (e.g. {_example(self.granularity)})")
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since {self.since} is after until {self.until}")
        return self

    @property
    def deadline_days(self) -> int:
        return DUE_DAYS[self.granularity] if self.due_days is None else self.due_days


def _example(granularity: str) -> str:
    return {"day": "2023-12-01", "month": "2023-12", "year": "2023"}[granularity]


class Column(Strict):
    name: Ident
    source: str
    type: LogicalType
    description: str
    unit: str | None = None
    unit_column: str | None = None
    measure: str | None = None  # for values whose unit is in another column: money, energy, area, …
    aliases: list[str] = []  # other headers a delivery may use for this column (schema-drift mapping)
    role: str | None = None
    grade: str | None = None
    classification: str | None = None


class Watermark(Strict):
    """What makes a relational source incremental: a column every insert and update sets (an update time), and
    the primary key, which orders rows of equal time — so a batch that ends among rows of one timestamp resumes
    after the last row it took, losing none and taking none twice."""

    column: str
    key: list[str] = Field(min_length=1)


class Database(Strict):
    """A department's business database (PostgreSQL) or an enterprise system's (MariaDB/MySQL), read by
    watermark (``assets/ingest/database.py``). ``connection`` names the connection, whose URL comes from the
    environment (``SHUCANG_SOURCE_<CONNECTION>``) or the owner-only connections file — never from this file.
    ``columns`` maps a warehouse column to its column in the table where the names differ (default: the same
    name). Rows are read only once their update time is ``lag_seconds`` old by the source's clock, so a
    transaction still open when a batch is read cannot commit a row behind it. A column the table gains is
    refused until it is registered or listed in ``ignore_columns``; a registered column whose type changes is
    refused until the new type is accepted in ``accept_types`` (column → type as the source's catalogue names
    it): a registered evolution, never a silent reshape."""

    connection: Ident
    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
    # watermark: increments by update time and key; log: the source's change log — PostgreSQL logical decoding
    # through ``slot`` and ``publication`` (default shucang_<dataset>; assets/ingest/changelog.py), MariaDB's
    # binary log in ROW format (assets/ingest/binlog.py)
    capture: Literal["watermark", "log"] = "watermark"
    watermark: Watermark | None = None
    slot: Ident | None = None
    publication: Ident | None = None
    columns: dict[str, str] = {}
    lag_seconds: int = Field(default=60, ge=0)
    batch_rows: int = Field(default=1_000_000, ge=1)  # rows per Delta commit (about 200 MB of text at most)
    ignore_columns: list[str] = []
    accept_types: dict[str, str] = {}
    # the zone of the source's wall-clock times (a ``timestamp``/``datetime`` without one): when a row changed
    time_zone: str = "Asia/Shanghai"

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (an IANA name, e.g. Asia/Shanghai)") from exc
        return v

    @model_validator(mode="after")
    def _capture(self) -> Database:
        if self.capture == "watermark" and self.watermark is None:
            raise ValueError("capture watermark needs `watermark:` (an update-time column and the primary key)")
        return self


class Api(Strict):
    """A data platform's interface (接口): a paginated JSON endpoint read with a token
    (``assets/ingest/api.py``). ``connection`` names the base URL and token (environment
    ``SHUCANG_SOURCE_<CONNECTION>`` / ``…_TOKEN``, or the connections file). Each page is an object holding
    the ``items`` and the cursor that continues after them (``next_cursor``, sent back as ``cursor_param``)
    and whether more follow (``has_more``); the cursor after the last page resumes the next run (a
    keyset/change-feed cursor: items changed meanwhile come again, as later versions). ``key`` names each
    item's identity; ``fields`` maps a warehouse column to its field where the names differ."""

    connection: Ident
    path: str = Field(pattern=r"^/[A-Za-z0-9_./-]*$")
    key: list[str] = Field(min_length=1)
    items: str = "data"
    next_cursor: str = "next_cursor"
    has_more: str = "has_more"
    cursor_param: str = "cursor"
    page_size_param: str = "limit"
    page_size: int = Field(default=500, ge=1)
    fields: dict[str, str] = {}
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)  # per page: timeouts, 429 and 5xx are retried with backoff
    pages_per_commit: int = Field(default=20, ge=1)


class Stream(Strict):
    """Device telemetry as a stream (``assets/ingest/stream.py``): devices publish MQTT to a NATS server
    whose JetStream ``stream`` keeps every acknowledged message on disk (the broker choice: README); the
    warehouse reads it with the durable pull consumer ``durable`` (default shucang_<dataset>) in micro-batches
    of up to ``batch_messages``, and acknowledges a batch only after its Delta commit. ``key`` names a
    reading (device and its sequence number): a redelivered reading already in raw is not landed twice.
    ``connection`` names the NATS URL; ``subjects`` the MQTT topics as NATS subjects (``devices/x/telemetry``
    is ``devices.x.telemetry``); ``fields`` maps a warehouse column to its field where the names differ."""

    connection: Ident
    stream: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    subjects: list[str] = Field(min_length=1)
    key: list[str] = Field(min_length=1)
    durable: Ident | None = None
    fields: dict[str, str] = {}
    batch_messages: int = Field(default=20_000, ge=1)
    max_seconds: float = Field(default=60.0, gt=0)  # one run reads at most this long; the rest waits
    # a batch fetched by a consumer that died unacknowledged is redelivered after this long
    ack_wait_seconds: float = Field(default=60.0, gt=0)


class Dataset(Strict):
    id: Ident
    department: str
    name_zh: str
    name_en: str
    description: str
    format: Literal["csv", "xlsx", "jsonl"]
    landing: str
    pattern: str
    update_cycle: Cycle
    share_type: ShareType
    open_type: OpenType
    period: Period | None = None
    sheet: str | None = None  # xlsx: the worksheet holding the data (else the only visible one with content)
    encodings: list[Literal["utf-8", "gb18030"]] = Field(default=["utf-8", "gb18030"], min_length=1)  # text files
    owner: str | None = None
    classification: str | None = None
    grade: str | None = None
    columns: list[Column] = Field(min_length=1)
    # where collection reads it: files dropped in the landing folder, or a database table by watermark
    kind: Literal["file", "postgres", "mysql", "api", "stream"] = "file"
    database: Database | None = None
    api: Api | None = None
    stream: Stream | None = None

    @model_validator(mode="after")
    def _columns_unique(self) -> Dataset:
        if (self.kind in ("postgres", "mysql")) != (self.database is not None):
            raise ValueError(f"kind {self.kind!r}: a database source needs `database:`, and only it may have one")
        if (self.kind == "api") != (self.api is not None):
            raise ValueError(f"kind {self.kind!r}: an interface source needs `api:`, and only it may have one")
        if (self.kind == "stream") != (self.stream is not None):
            raise ValueError(f"kind {self.kind!r}: a stream source needs `stream:`, and only it may have one")
        if self.stream is not None:
            unknown = sorted(set(self.stream.fields) - {c.name for c in self.columns})
            if unknown:
                raise ValueError(f"stream.fields: {unknown} are not columns of the dataset")
        if self.api is not None:
            unknown = sorted(set(self.api.fields) - {c.name for c in self.columns})
            if unknown:
                raise ValueError(f"api.fields: {unknown} are not columns of the dataset")
        if self.database is not None:
            unknown = sorted(set(self.database.columns) - {c.name for c in self.columns})
            if unknown:
                raise ValueError(f"database.columns: {unknown} are not columns of the dataset")
        if self.sheet is not None and self.format != "xlsx":
            raise ValueError(f"sheet {self.sheet!r}: only an xlsx source has worksheets")
        for attr in ("name", "source"):
            values = [getattr(c, attr) for c in self.columns]
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate column {attr}s: {dupes}")
        names = {c.name for c in self.columns}
        if self.period is not None and self.period.column is not None and self.period.column not in names:
            raise ValueError(f"period.column {self.period.column!r} is not a column")
        for c in self.columns:
            if c.unit_column and c.unit_column not in names:
                raise ValueError(f"column {c.name!r}: unit_column {c.unit_column!r} is not a column")
        return self

    @property
    def source_headers(self) -> list[str]:
        return [c.source for c in self.columns]

    @property
    def alias_map(self) -> dict[str, str]:
        """Configured drift mappings: delivered header → registered header."""
        return {a: c.source for c in self.columns for a in c.aliases}

    @property
    def versioned(self) -> bool:
        """Whether its rows are versions of a source's rows (a database table's, an interface's items), named by
        ``_source_key``, rather than the rows of delivered files."""
        return self.kind != "file"

    @property
    def source_key(self) -> list[str]:
        """The source columns naming a row, where the registry declares them (a change log's is the table's
        primary key, read from the database)."""
        if self.api is not None:
            return list(self.api.key)
        if self.stream is not None:
            return list(self.stream.key)
        if self.database is not None and self.database.watermark is not None:
            return list(self.database.watermark.key)
        return []

    def db_column(self, name: str) -> str:
        """The table column (a database source) or item field (an interface) a warehouse column is read from."""
        if self.api is not None:
            return self.api.fields.get(name, name)
        if self.stream is not None:
            return self.stream.fields.get(name, name)
        assert self.database is not None
        return self.database.columns.get(name, name)

    def period_of(self, filename: str) -> str | None:
        """The delivery period a file name declares (e.g. '2023-05'), or None."""
        if self.period is None:
            return None
        m = re.search(self.period.from_filename, filename)
        return m.group(1) if m else None


class Registry(Strict):
    departments: dict[str, Department]
    defaults: Defaults
    datasets: list[Dataset]

    @model_validator(mode="after")
    def _references(self) -> Registry:
        ids = [d.id for d in self.datasets]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate dataset ids: {dupes}")
        for i, d in enumerate(self.datasets):
            if d.department not in self.departments:
                raise ValueError(
                    f"datasets[{i}] ({d.id}): unknown department {d.department!r}; known: {sorted(self.departments)}"
                )
        return self

    def owner_of(self, ds: Dataset) -> str:
        """Who owns a dataset: its own ``owner``, else its source department's. (The steward of every
        dataset is ``defaults.steward``.)"""
        return ds.owner or self.departments[ds.department].owner

    def dataset(self, dataset_id: str) -> Dataset:
        for d in self.datasets:
            if d.id == dataset_id:
                return d
        raise KeyError(f"no dataset {dataset_id!r} in the source registry")


OVERLAY_ENV = "SHUCANG_SOURCES_OVERLAY"


class Channel(Strict):
    """What an overlay changes of a dataset: where it comes from — its ``kind`` and that channel's settings —
    and ``since``, the first period its 归集 agreement covers when a deployment holds an earlier history than
    ``sources.yaml`` declares (the bench's 24 months). Nothing else of it."""

    kind: Literal["file", "postgres", "mysql", "api", "stream"] | None = None
    database: Database | None = None
    api: Api | None = None
    stream: Stream | None = None
    since: str | None = None


class Overlay(Strict):
    """A registry overlay: datasets moved to other channels (e.g. ``lakehouse/sources.live.yaml``), or
    covering an earlier history."""

    datasets: dict[str, Channel]


def load_registry(path: Path = REGISTRY_PATH, overlay: Path | None = None) -> Registry:
    """Load and validate a registry file; errors name the file and the offending key. ``overlay``: a file
    that moves datasets to other channels — ``datasets: {<id>: {kind: …, database|api|stream: …}}``, each
    replacing the registry's channel of the dataset — or moves the start of their agreement (``since: …``),
    the rest of each as the registry declares."""
    if overlay is None:
        return config.load(path, Registry, "source registry")
    document = config.read_yaml(path)
    moves = config.load(overlay, Overlay, "source registry overlay")
    by_id = {d.get("id"): d for d in document.get("datasets", [])}
    for dataset_id, channel in moves.datasets.items():
        if dataset_id not in by_id:
            raise config.ConfigError(f"{overlay}: datasets.{dataset_id}: no such dataset in {path}")
        change = channel.model_dump(exclude_none=True)
        if "since" in change:
            if not isinstance(by_id[dataset_id].get("period"), dict):
                raise config.ConfigError(f"{overlay}: datasets.{dataset_id}.since: the dataset has no period")
            by_id[dataset_id]["period"] = {**by_id[dataset_id]["period"], "since": change.pop("since")}
        if change and "kind" not in change:
            raise config.ConfigError(f"{overlay}: datasets.{dataset_id}: a channel's settings need its `kind:`")
        if "kind" in change:
            for key in ("database", "api", "stream"):
                by_id[dataset_id].pop(key, None)
        by_id[dataset_id].update(change)
    return config.validate(document, Registry, f"{path} with {overlay}", "source registry")


@functools.cache
def registry() -> Registry:
    """The registry in force: ``sources.yaml``, with the overlay ``SHUCANG_SOURCES_OVERLAY`` names if set."""
    overlay = os.environ.get(OVERLAY_ENV)
    return load_registry(overlay=Path(overlay) if overlay else None)
