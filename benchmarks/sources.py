"""Real sources, measured (``make bench``; or ``python -m benchmarks.sources ROWS READINGS``).

On a PostgreSQL the bench starts (the machine's packages, ``wal_level=logical``, a temp folder, a free port):
ROWS tax filings read by watermark, by a change log's first copy and by change log, against the plain baseline of ``COPY (…) TO STDOUT``
into a Delta write of the same rows (text, as raw holds them). On a NATS server it starts (JetStream on
disk): READINGS device readings consumed into raw in micro-batches, with the broker killed (SIGKILL) and
restarted while the consumer runs; every reading must land exactly once. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import glob
import io
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

COLUMNS = "id, uscc, taxpayer_name, period, filing_type, revenue, tax_paid, amount_unit, filed_on, updated_at"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres(home: Path) -> tuple[str, list[str], str]:
    bin_dir = os.path.dirname(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1])
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(home, "postgres")
    subprocess.run(
        [*as_user, f"{bin_dir}/initdb", "-D", str(home / "data"), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    port = _port()
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=4"
    subprocess.run(
        [
            *as_user,
            f"{bin_dir}/pg_ctl",
            "-D",
            str(home / "data"),
            "-l",
            str(home / "log"),
            "-o",
            options,
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    stop = [*as_user, f"{bin_dir}/pg_ctl", "-D", str(home / "data"), "-m", "immediate", "stop"]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop, bin_dir


def _dataset(kind: str, spec: dict):
    from lakehouse.registry import Dataset, registry

    base = registry().dataset("tax_monthly").model_dump()
    return Dataset.model_validate({**base, "kind": kind, "database": spec})


def relational(rows: int) -> dict:
    import connectorx  # noqa: F401 - imported before the timings, as the baseline's libraries are
    import polars as pl
    import psycopg2
    import pyarrow.csv  # noqa: F401
    from deltalake import write_deltalake

    from assets.ingest.changelog import PostgresChangeCollector
    from assets.ingest.database import DatabaseCollector
    from lakehouse.lake import Lake

    home = Path(tempfile.mkdtemp(prefix="shucang-bench-pg-"))
    url, stop, _ = _postgres(home)
    out: dict = {"rows": rows}
    try:
        con = psycopg2.connect(url)
        con.autocommit = True
        cur = con.cursor()
        fill = (
            "select i, '91331003MA' || lpad(i::text, 8, '0'), '测试' || i || '模具有限公司', "
            "'2023-' || lpad((i % 12 + 1)::text, 2, '0'), '正常', (1000 + i * 1.5)::numeric(18,2), "
            "(30 + i % 7)::numeric(18,2), '元', date '2024-01-10', timestamp '2024-01-15 09:00' + (i / 1000) * "
            "interval '1 second' from generate_series({lo}, {hi}) as i"
        )
        for name in ("filings", "changes"):
            cur.execute(
                f"create table {name} (id bigint primary key, uscc text, taxpayer_name text, period text, filing_type "
                "text, revenue numeric(18,2), tax_paid numeric(18,2), amount_unit text, filed_on date, updated_at "
                "timestamp not null)"
            )
        cur.execute(f"insert into filings ({COLUMNS}) " + fill.format(lo=1, hi=rows))
        cur.execute("create index on filings (updated_at, id)")

        # the baseline: COPY the same columns as text, into one Delta write
        started = time.perf_counter()
        buffer = io.BytesIO()
        cols = ", ".join(f"cast({c} as text) as {c}" for c in COLUMNS.split(", ")[1:-1])
        cur.copy_expert(f"copy (select {cols} from filings) to stdout with (format csv, header true)", buffer)
        buffer.seek(0)
        frame = pl.read_csv(buffer, infer_schema=False)
        write_deltalake(str(home / "baseline"), frame.to_arrow(), mode="append")
        out["copy_to_delta_seconds"] = time.perf_counter() - started
        del frame, buffer

        env = {"SHUCANG_SOURCE_BENCH": url}
        lake = Lake(str(home / "lake-wm"))
        ds = _dataset(
            "postgres",
            {
                "connection": "bench",
                "table": "filings",
                "watermark": {"column": "updated_at", "key": ["id"]},
                "lag_seconds": 0,
            },
        )
        started = time.perf_counter()
        landed = DatabaseCollector(ds, lake, "bench-wm", now=dt.datetime.now(dt.UTC), environ=env).run().rows_landed
        out["watermark_seconds"] = time.perf_counter() - started
        assert landed == rows, f"watermark landed {landed} of {rows}"

        # the change log's first run on a table that holds ROWS: its copy at the slot's exported snapshot
        lake = Lake(str(home / "lake-snapshot"))
        ds = _dataset(
            "postgres",
            {"connection": "bench", "table": "filings", "capture": "log", "ignore_columns": ["updated_at"]},
        )
        started = time.perf_counter()
        landed = PostgresChangeCollector(ds, lake, "bench-copy", now=dt.datetime.now(dt.UTC), environ=env).run()
        out["change_log_snapshot_seconds"] = time.perf_counter() - started
        assert landed.rows_landed == rows, f"the change log's copy landed {landed.rows_landed} of {rows}"
        cur.execute("select pg_drop_replication_slot('shucang_tax_monthly')")
        cur.execute("drop publication shucang_tax_monthly")

        # the change log: the slot starts on an empty table, then ROWS inserts in 20 transactions
        lake = Lake(str(home / "lake-log"))
        ds = _dataset(
            "postgres",
            {
                "connection": "bench",
                "table": "changes",
                "capture": "log",
                "ignore_columns": ["updated_at"],
                "batch_rows": 200_000,
            },
        )
        PostgresChangeCollector(ds, lake, "bench-snap", now=dt.datetime.now(dt.UTC), environ=env).run()
        step = -(-rows // 20)
        for lo in range(1, rows + 1, step):
            cur.execute(f"insert into changes ({COLUMNS}) " + fill.format(lo=lo, hi=min(rows, lo + step - 1)))
        # the server's own share: decoding the slot's changes, counted and nothing sent (peeked: the slot keeps them)
        started = time.perf_counter()
        cur.execute(
            "select count(*) from pg_logical_slot_peek_binary_changes('shucang_tax_monthly', null, null, "
            "'proto_version', '1', 'publication_names', 'shucang_tax_monthly')"
        )
        cur.fetchone()
        out["change_log_server_decode_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        result = PostgresChangeCollector(ds, lake, "bench-log", now=dt.datetime.now(dt.UTC), environ=env).run()
        out["change_log_seconds"] = time.perf_counter() - started
        assert result.rows_landed == rows, (
            f"the change log landed {result.rows_landed} of {rows}: "
            f"{[(o.status, o.note or (o.rejection and o.rejection.detail)) for o in result.outcomes]}"
        )
        con.close()
    finally:
        subprocess.run(stop, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    return out


def telemetry(readings: int) -> dict:
    """Readings consumed into raw while the broker is killed and restarted mid-run."""
    import nats
    from nats.js.api import StorageType, StreamConfig

    from assets.ingest.stream import StreamCollector
    from lakehouse.lake import Lake
    from lakehouse.registry import Dataset, registry

    home = Path(tempfile.mkdtemp(prefix="shucang-bench-nats-"))
    port = _port()
    conf = home / "nats.conf"
    conf.write_text(f'listen: 127.0.0.1:{port}\njetstream {{ store_dir: "{home / "js"}" }}\n', encoding="utf-8")
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"

    def start():
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return proc
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    broker = start()
    url = f"nats://127.0.0.1:{port}"

    async def load(name: str):
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"], storage=StorageType.FILE))
        chunk = 2000
        for lo in range(0, readings, chunk):
            acks = [
                js.publish(
                    f"{name.lower()}.DEV{i % 500:05d}",
                    json.dumps(
                        {
                            "device_id": f"DEV{i % 500:05d}",
                            "seq": i,
                            "ts": f"2023-12-{1 + i % 28:02d}T08:00:00+08:00",
                            "state": "run",
                            "power_kw": 12.5,
                            "output_count": i % 13,
                        }
                    ).encode(),
                )
                for i in range(lo, min(readings, lo + chunk))
            ]
            await asyncio.gather(*acks)
        await nc.close()

    out: dict = {"readings": readings}
    base = registry().dataset("ent_telemetry").model_dump()
    env = {"SHUCANG_SOURCE_BENCH": url}

    def dataset(name: str) -> Dataset:
        spec = {
            "connection": "bench",
            "stream": name,
            "subjects": [f"{name.lower()}.>"],
            "key": ["device_id", "seq"],
            "ack_wait_seconds": 5,
            "max_seconds": 600,
        }
        return Dataset.model_validate({**base, "kind": "stream", "stream": spec})

    try:
        # sustained: the readings waiting in the stream, consumed into raw by one run
        started = time.perf_counter()
        asyncio.run(load("STEADY"))
        out["publish_seconds"] = time.perf_counter() - started
        steady = Lake(str(home / "lake-steady"))
        started = time.perf_counter()
        StreamCollector(dataset("STEADY"), steady, "steady", now=dt.datetime.now(dt.UTC), environ=env).run()
        out["steady_seconds"] = time.perf_counter() - started
        out["steady_landed"] = steady.row_count("raw", "ent_telemetry")
        # across a broker restart: killed with SIGKILL while the consumer runs, restarted, nothing lost
        asyncio.run(load("BENCH"))
        ds = dataset("BENCH")
        lake = Lake(str(home / "lake"))
        restarted = threading.Event()

        def restart_mid_run():
            while (
                lake.table("raw", ds.id) is None or lake.table("raw", ds.id).version() < 3
            ) and not restarted.is_set():
                time.sleep(0.01)
            broker.send_signal(signal.SIGKILL)
            broker.wait()
            out["broker_restart_at_rows"] = lake.row_count("raw", ds.id)
            globals()["_broker"] = start()
            restarted.set()

        killer = threading.Thread(target=restart_mid_run, daemon=True)
        killer.start()
        started = time.perf_counter()
        runs = 0
        while True:
            runs += 1
            try:
                StreamCollector(ds, lake, f"bench-{runs}", now=dt.datetime.now(dt.UTC), environ=env).run()
            except Exception as exc:  # the broker went away mid-run: the next run resumes
                out.setdefault("errors", []).append(type(exc).__name__)
                restarted.wait(30)
                time.sleep(ds.stream.ack_wait_seconds)  # what was fetched and not acknowledged comes again
                continue
            if (lake.row_count("raw", ds.id) or 0) >= readings or runs > 20:
                break
            # fetched before the broker died and never acknowledged: the stream gives them again after ack_wait
            time.sleep(ds.stream.ack_wait_seconds)
        out["consume_seconds"] = time.perf_counter() - started

        async def stored():
            nc = await nats.connect(url)
            info = await nc.jetstream().stream_info("BENCH")
            consumer = await nc.jetstream().consumer_info("BENCH", "shucang_ent_telemetry")
            await nc.close()
            return info.state.messages, consumer.num_pending, consumer.num_ack_pending, consumer.num_redelivered

        out["stream_after"] = asyncio.run(stored())
        raw = lake.read("raw", ds.id, columns=["_source_key"])
        out["landed"] = raw.height
        out["distinct"] = raw["_source_key"].n_unique()
        out["runs"] = runs
    finally:
        for proc in (broker, globals().get("_broker")):
            if proc is not None and proc.poll() is None:
                proc.kill()
        shutil.rmtree(home, ignore_errors=True)
    return out


if __name__ == "__main__":
    rows, readings = int(sys.argv[1]), int(sys.argv[2])
    out = {"relational": relational(rows), "telemetry": telemetry(readings)}
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
