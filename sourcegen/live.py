"""The live demo's sources (``make demo SOURCES=live``): the generator's deliveries put where a real deployment
reads them — department tables in PostgreSQL (前置库), an enterprise system's table in MariaDB, a data
platform's interface, device readings on the broker — for the datasets ``lakehouse/sources.live.yaml`` moves
off files.

What goes in is what the departments delivered and the file path accepted: a delivery whose file is damaged
(truncated, unreadable, empty, or with headers the registry does not know) is a file's accident, not a row of
the department's system, so it is not loaded; its re-sent file is. Values go in as delivered (text, the
same characters the file holds), each row stamped with when its delivery came (the table's update time, the
interface's change order, the broker's receipt) — so the live path's published tables can be compared with the
file path's, table by table.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from lakehouse.connections import env_name, redacted, url_of
from lakehouse.registry import Dataset, Registry
from sourcegen.delivery import Delivery

CST = dt.timezone(dt.timedelta(hours=8))
# the machine's services, when the environment names none (the live demo's own connections)
DEFAULT_URLS = {
    "postgres": "postgresql://postgres@127.0.0.1:5432/shucang_live",
    "mysql": "mysql://root@127.0.0.1:3306/shucang_live",
    "stream": "nats://127.0.0.1:4222",
}


# the client libraries whose errors mean "the service is not there or refused us"
_SERVICE_ERRORS = {"psycopg2", "pymysql", "nats"}


class LiveSourceUnavailable(RuntimeError):
    """A service the live demo loads into is down or refuses the connection."""


def accepted(ds: Dataset, delivery: Delivery) -> bool:
    """Whether the file path takes this delivery's rows: an intact file, or one whose renamed headers are all
    registered aliases (a drift the registry maps)."""
    if delivery.damage is None:
        return True
    if delivery.damage == "schema_drift" and delivery.drift:
        return all(new in ds.alias_map for new in delivery.drift.values())
    return False


class LiveSources:
    """Collects the deliveries of the datasets not read from files (``collect``), then loads them (``load``)."""

    def __init__(self, reg: Registry, home: Path):
        self.datasets = {d.id: d for d in reg.datasets if d.kind != "file"}
        self.home = home
        self.frames: dict[str, list[pl.DataFrame]] = {k: [] for k in self.datasets}
        self.skipped: dict[str, int] = {}

    def collect(self, delivery: Delivery, entry: dict) -> None:
        ds = self.datasets.get(delivery.dataset)
        if ds is None:
            return
        if not accepted(ds, delivery):
            self.skipped[ds.id] = self.skipped.get(ds.id, 0) + 1
            return
        names = {c.source: c.name for c in ds.columns} | {a: c.name for c in ds.columns for a in c.aliases}
        frame = delivery.frame
        if delivery.damage == "schema_drift" and delivery.drift:
            frame = frame.rename(delivery.drift)
        frame = frame.rename({h: names[h] for h in frame.columns if h in names})
        at = dt.datetime.fromisoformat(entry["delivered_at"]).astimezone(dt.UTC)
        self.frames[ds.id].append(
            frame.select(
                pl.col(c.name).cast(pl.String) if c.name in frame.columns else pl.lit("").alias(c.name)
                for c in ds.columns
            ).with_columns(pl.lit(at).alias("__at"), pl.lit(entry["path"]).alias("__file"))
        )

    def rows(self, dataset: str) -> pl.DataFrame:
        """A dataset's rows in the order they were delivered, numbered from 1 (``id``)."""
        ds = self.datasets[dataset]
        frames = self.frames[dataset]
        if not frames:
            return pl.DataFrame(
                schema={"id": pl.Int64, **{c.name: pl.String for c in ds.columns}, "__at": pl.Datetime("us", "UTC")}
            )
        out = pl.concat(frames).with_row_index("__n").sort("__at", "__file", "__n")
        return out.with_columns(pl.int_range(1, out.height + 1, dtype=pl.Int64).alias("id")).drop("__n", "__file")

    # --- loading ---------------------------------------------------------------------------------------------
    def load(self, environ: dict[str, str]) -> list[str]:
        """Every live dataset loaded into its channel; returns a line per dataset for the terminal."""
        lines = []
        for ds in self.datasets.values():
            rows = self.rows(ds.id)
            connection = (ds.database or ds.stream or ds.api).connection
            try:
                if ds.kind == "postgres":
                    where = _load_postgres(ds, rows, url_of(connection, environ))
                elif ds.kind == "mysql":
                    where = _load_mariadb(ds, rows, url_of(connection, environ))
                elif ds.kind == "api":
                    where = self._write_platform(ds, rows)
                elif ds.kind == "stream":
                    where = _publish(ds, rows, url_of(connection, environ))
                else:  # pragma: no cover - the registry allows no other kind
                    raise ValueError(ds.kind)
            except Exception as exc:  # a service down or refusing: say which, where, and how to point elsewhere
                if type(exc).__module__.split(".")[0] not in _SERVICE_ERRORS and not isinstance(exc, OSError):
                    raise
                url = redacted(url_of(connection, environ)) if ds.kind != "api" else "(the demo's interface)"
                raise LiveSourceUnavailable(
                    f"the live demo cannot load {ds.id} into {ds.kind} at {url}: {exc}".strip()
                    + f" — start the service, or set {env_name(connection)} to one that runs"
                ) from exc
            skipped = self.skipped.get(ds.id, 0)
            lines.append(
                f"  {ds.id}: {rows.height:,} rows → {where}"
                + (f" ({skipped} damaged file(s) not loaded, as the file path refuses them)" if skipped else "")
            )
        return lines

    def _write_platform(self, ds: Dataset, rows: pl.DataFrame) -> str:
        folder = self.home / "platform"
        folder.mkdir(parents=True, exist_ok=True)
        items = rows.drop("id", "__at").rename({c.name: ds.db_column(c.name) for c in ds.columns})
        items.write_ndjson(folder / f"{ds.api.path.strip('/').replace('/', '__')}.jsonl")
        return f"the platform interface {ds.api.path}"

    @contextmanager
    def platform(self, environ: dict[str, str]) -> Iterator[str | None]:
        """The data platform's interface server, serving what ``load`` wrote, for the demo's run; its URL and
        token are put in ``environ`` for the connections that read it (unless already set)."""
        apis = [ds for ds in self.datasets.values() if ds.kind == "api"]
        if not apis:
            yield None
            return
        token_file = self.home / "platform" / "token"
        token_file.write_text(secrets.token_urlsafe(24), encoding="utf-8")
        token_file.chmod(0o600)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "sourcegen.platform", str(self.home / "platform"), "--port", str(port),
             "--token-file", str(token_file)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise RuntimeError("the platform interface server did not start") from None
                    time.sleep(0.05)
            url = f"http://127.0.0.1:{port}"
            for ds in apis:
                environ.setdefault(env_name(ds.api.connection), url)
                environ.setdefault(env_name(ds.api.connection) + "_TOKEN", token_file.read_text(encoding="utf-8"))
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def default_connections(reg: Registry, environ: dict[str, str]) -> None:
    """The machine's services for the live datasets' connections the environment does not name."""
    for ds in reg.datasets:
        if ds.database is not None:
            environ.setdefault(env_name(ds.database.connection), DEFAULT_URLS[ds.kind])
        elif ds.stream is not None:
            environ.setdefault(env_name(ds.stream.connection), DEFAULT_URLS["stream"])


def _database_name(url: str) -> str:
    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"the live demo's database name {name!r} is not a plain identifier")
    return name


def _fresh_table(cur, ds: Dataset, quote: str, stamp: str, extra: str = "") -> tuple[str, list[str]]:
    """The dataset's table made anew: ``id``, the registered columns as text, ``updated_at``; returns the quoted
    table and column names."""

    def q(name: str) -> str:
        return quote + name.replace(quote, quote * 2) + quote

    table, cols = q(ds.database.table), [q(ds.db_column(c.name)) for c in ds.columns]
    cur.execute(f"drop table if exists {table}")
    cur.execute(
        f"create table {table} (id bigint primary key, {', '.join(f'{c} text' for c in cols)}, "
        f"updated_at {stamp} not null{extra})"
    )
    return table, cols


def _load_postgres(ds: Dataset, rows: pl.DataFrame, url: str) -> str:
    """A fresh table: ``id`` (the primary key), the registered columns as text, ``updated_at`` (with time zone:
    when the row's delivery came)."""
    import psycopg2

    name = _database_name(url)
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("select 1 from pg_database where datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(f'create database "{name}"')
    admin.close()
    con = psycopg2.connect(url)
    try:
        with con, con.cursor() as cur:
            table, cols = _fresh_table(cur, ds, '"', "timestamp with time zone")
            buffer = io.BytesIO()
            rows.select("id", *(pl.col(c.name).alias(ds.db_column(c.name)) for c in ds.columns),
                        pl.col("__at").dt.strftime("%Y-%m-%d %H:%M:%S%.6f+00").alias("updated_at")).write_csv(buffer)  # fmt: skip
            buffer.seek(0)
            cur.copy_expert(
                f"copy {table} (id, {', '.join(cols)}, updated_at) from stdin with (format csv, header true)", buffer
            )
            cur.execute(f"create index on {table} (updated_at, id)")
    finally:
        con.close()
    return f"PostgreSQL {url.rsplit('@', 1)[-1]} table {ds.database.table}"


def _load_mariadb(ds: Dataset, rows: pl.DataFrame, url: str) -> str:
    """A fresh table: ``id``, the registered columns as text, ``updated_at`` (a DATETIME: China Standard Time
    wall-clock, as such systems keep it — ``database.time_zone``)."""
    import pymysql

    rest = url.split("://", 1)[1]
    auth, _, hostpart = rest.rpartition("@")
    user, _, password = auth.partition(":")
    hostport, _, name = hostpart.partition("/")
    host, _, port = hostport.partition(":")
    name = _database_name(url)
    con = pymysql.connect(host=host, port=int(port or 3306), user=user or "root", password=password, autocommit=True,
                          charset="utf8mb4")  # fmt: skip
    try:
        with con.cursor() as cur:
            cur.execute(f"create database if not exists `{name}` character set utf8mb4 collate utf8mb4_bin")
            cur.execute(f"use `{name}`")
            table, cols = _fresh_table(cur, ds, "`", "datetime(6)", ", key (updated_at, id)")
            wall = rows.with_columns(
                pl.col("__at").dt.convert_time_zone(ds.database.time_zone).dt.replace_time_zone(None)
            )
            values = wall.select("id", *(c.name for c in ds.columns), "__at").rows()
            sql = (
                f"insert into {table} (id, {', '.join(cols)}, updated_at) values "
                f"({', '.join(['%s'] * (len(cols) + 2))})"
            )
            for lo in range(0, len(values), 5000):
                cur.executemany(sql, values[lo : lo + 5000])
    finally:
        con.close()
    return f"MariaDB {hostport} table {name}.{ds.database.table}"


def _subject(ds: Dataset, reading: dict) -> str:
    """The MQTT topic a device publishes to, as a NATS subject: the first subject with ``*`` as the device."""
    device = re.sub(r"[^A-Za-z0-9_-]", "_", str(reading.get(ds.stream.key[0]) or "unknown"))
    return ds.stream.subjects[0].replace("*", device, 1).replace(">", device)


def _publish(ds: Dataset, rows: pl.DataFrame, url: str) -> str:
    """The readings published in delivery order to a fresh JetStream stream (file storage), each acknowledged
    by the broker before the load counts it."""
    import nats
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    readings = rows.drop("id", "__at").rename({c.name: ds.db_column(c.name) for c in ds.columns}).to_dicts()

    async def run() -> None:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            try:
                await js.delete_stream(ds.stream.stream)
            except NotFoundError:
                pass
            await js.add_stream(
                StreamConfig(name=ds.stream.stream, subjects=list(ds.stream.subjects), storage=StorageType.FILE)
            )
            for lo in range(0, len(readings), 2000):
                await asyncio.gather(
                    *(
                        js.publish(_subject(ds, r), json.dumps(r, ensure_ascii=False).encode())
                        for r in readings[lo : lo + 2000]
                    )
                )
        finally:
            await nc.close()

    asyncio.run(run())
    return f"NATS JetStream {url.rsplit('@', 1)[-1]} stream {ds.stream.stream}"
