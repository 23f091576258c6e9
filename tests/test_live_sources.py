"""The live demo's channels against the file path, on the machine's services: the generator's deliveries put
by ``sourcegen.live`` into PostgreSQL (127.0.0.1:5432), MariaDB (127.0.0.1:3306), the platform interface it
starts and NATS JetStream (127.0.0.1:4222); each dataset the overlay moves is collected from its channel and
from its files, and standardised: std holds the same rows either way (registered columns, as typed), and the
collection status the same delivery states — a database's periods are delivered when the source changed
them, not when they were collected. (``make test-live`` compares the published tables of two whole demos.)"""

from __future__ import annotations

import datetime as dt
import uuid

import polars as pl
import pytest

from assets.collect import database_collector
from assets.ingest.api import ApiCollector
from assets.ingest.collector import Collector
from assets.ingest.stream import StreamCollector
from lakehouse.lake import Lake
from lakehouse.registry import load_registry, registry
from orchestration.cli.demo import LIVE_OVERLAY
from orchestration.compare import compare_table
from quality.collection import collection_status, versioned_deliveries
from quality.rulebook import rules_for
from quality.standardise import standardise
from sourcegen.generate import generate
from sourcegen.live import DEFAULT_URLS, LiveSources

pytestmark = pytest.mark.integration  # the machine's database servers and broker


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The overlay's registry under names of this test's own (databases, stream and subjects), loaded."""
    tag = uuid.uuid4().hex[:8]
    reg = load_registry(overlay=LIVE_OVERLAY)
    datasets = []
    for ds in reg.datasets:
        if ds.stream is not None:
            ds = ds.model_copy(
                update={"stream": ds.stream.model_copy(update={"stream": f"T{tag}", "subjects": [f"t{tag}.*.tel"]})}
            )
        datasets.append(ds)
    reg = reg.model_copy(update={"datasets": datasets})
    home = tmp_path_factory.mktemp("live")
    sources = LiveSources(reg, home / "live")
    generate(home, scale=0.02, on_delivery=sources.collect)
    env = {
        "SHUCANG_SOURCE_LIVE_PG": DEFAULT_URLS["postgres"].rsplit("/", 1)[0] + f"/shucang_live_{tag}",
        "SHUCANG_SOURCE_LIVE_MARIADB": DEFAULT_URLS["mysql"].rsplit("/", 1)[0] + f"/shucang_live_{tag}",
        "SHUCANG_SOURCE_LIVE_BROKER": DEFAULT_URLS["stream"],
    }
    loaded = sources.load(env)
    yield reg, sources, home, env, loaded
    _drop(tag, f"T{tag}")


def _drop(tag: str, stream: str) -> None:
    import asyncio

    import nats
    import psycopg2
    import pymysql

    con = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f"drop database if exists shucang_live_{tag}")
    con.close()
    con = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    with con.cursor() as cur:
        cur.execute(f"drop database if exists `shucang_live_{tag}`")
    con.close()

    async def gone():
        nc = await nats.connect(DEFAULT_URLS["stream"])
        await nc.jetstream().delete_stream(stream)
        await nc.close()

    asyncio.run(gone())


def _collect_live(ds, lake: Lake, env: dict) -> None:
    now = dt.datetime.now(dt.UTC)
    if ds.database is not None:
        result = database_collector(ds)(ds, lake, "live-1", "run-1", now, env).run()
    elif ds.api is not None:
        result = ApiCollector(ds, lake, "live-1", "run-1", now, env).run()
    else:
        result = StreamCollector(ds, lake, "live-1", "run-1", now, env).run()
    assert all(o.status == "landed" for o in result.outcomes), [(o.file, o.status, o.note) for o in result.outcomes]


def test_every_live_channel_standardises_to_what_the_files_give(live, tmp_path):
    reg, sources, home, env, loaded = live
    assert len(loaded) == 5 and all("→" in line for line in loaded)
    files, channels = Lake(str(tmp_path / "files")), Lake(str(tmp_path / "live"))
    at = dt.datetime.now(dt.UTC)
    with sources.platform(env):
        for ds in (d for d in reg.datasets if d.kind != "file"):
            file_ds = registry().dataset(ds.id)
            assert file_ds.kind == "file"
            Collector(file_ds, files, home / "landing", tmp_path / "rejected", "files-1").run()
            _collect_live(ds, channels, env)
            rules = rules_for(ds.id)
            # the same rules on both sides; the references between datasets are the pipeline's business
            rules = rules.model_copy(update={"rules": [r for r in rules.rules if r.check != "references"]})
            for lake, d in ((files, file_ds), (channels, ds)):
                outcome = standardise(lake, d, rules, at=at)
                assert not outcome.withheld, (ds.id, outcome.reasons())
            a, b = files.read("std", ds.id), channels.read("std", ds.id)
            columns = [c.name for c in ds.columns]
            compared = compare_table(a.select(columns), b.select(columns), ds.id)
            assert compared.equal, (compared.only_left, compared.only_right, compared.examples)
            assert a.height > 0
    # the versions a database holds are delivered when the source changed them (its update time), so the
    # periods' states are the files': on time and late alike (telemetry is published now: late by design)
    status_files = collection_status(reg, files.read("ops", "collect_log"), at).status
    status_live = collection_status(
        reg, channels.read("ops", "collect_log"), at, versioned_deliveries(reg, channels)
    ).status
    for dataset in ("tax_monthly", "ent_production"):
        got = [
            s.filter(pl.col("dataset") == dataset).select("period", "state", "days_late")
            for s in (status_files, status_live)
        ]
        # a refused file's period is 'rejected' by files; the database never held it: 'missing'
        same = got[0].join(got[1], on="period", suffix="_live")
        assert same.height == got[0].height > 0
        differs = same.filter(
            (pl.col("state") != pl.col("state_live")) | (pl.col("days_late") != pl.col("days_late_live"))
        )
        assert differs.filter(~((pl.col("state") == "rejected") & (pl.col("state_live") == "missing"))).is_empty(), (
            differs
        )
        assert (got[1]["state"] == "on_time").sum() > 0


def test_a_service_that_is_not_there_is_named_with_its_setting_and_no_password(live):
    from sourcegen.live import LiveSourceUnavailable

    reg, sources, home, env, loaded = live
    with _closed_port() as port:
        down = {**env, "SHUCANG_SOURCE_LIVE_PG": f"postgresql://postgres:s3cret@127.0.0.1:{port}/shucang_live"}
        with pytest.raises(LiveSourceUnavailable) as err:
            sources.load(down)
    message = str(err.value)
    assert message.startswith("the live demo cannot load amr_registration into postgres at postgresql://")
    assert f"127.0.0.1:{port}" in message and "SHUCANG_SOURCE_LIVE_PG" in message and "s3cret" not in message


def _closed_port():
    """A port nothing listens on (bound, never listening) for the test's duration."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def held():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            yield s.getsockname()[1]

    return held()
