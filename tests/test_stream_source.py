"""Device telemetry as a stream, on a NATS server the test starts (JetStream on disk, MQTT 3.1.1 on) in a temp
folder on free ports: devices publish MQTT QoS 1; the broker is killed with SIGKILL and restarted mid-stream;
the consumer is killed after a Delta commit before its acknowledgement, and with SIGKILL mid-run. Every
acknowledged reading lands exactly once by (device, sequence); late readings land in their own day;
malformed messages are dead letters with their reason."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import polars as pl
import pytest

from assets.ingest.stream import StreamCollector
from lakehouse.lake import Lake
from lakehouse.registry import Dataset, registry
from lakehouse.tables import DEAD_LETTERS

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """nats-server of the machine's packages: JetStream with file storage, MQTT on."""

    def __init__(self):
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not Path(binary).exists():
            pytest.fail("nats-server is not installed; the machine's packages provide it")
        self.binary = binary
        self.home = Path(tempfile.mkdtemp(prefix="shucang-nats-"))
        self.port, self.mqtt_port = _free_port(), _free_port()
        (self.home / "nats.conf").write_text(
            f"listen: 127.0.0.1:{self.port}\nserver_name: shucang_{uuid.uuid4().hex[:6]}\n"
            f'jetstream {{ store_dir: "{self.home / "js"}" }}\nmqtt {{ listen: 127.0.0.1:{self.mqtt_port} }}\n',
            encoding="utf-8",
        )
        self.proc = None
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.home / "nats.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def broker():
    b = Broker()
    yield b
    b.close()


def dataset(stream: str, **options) -> Dataset:
    base = registry().dataset("ent_telemetry").model_dump()
    spec = {
        "connection": "nats",
        "stream": stream,
        "subjects": [f"{stream.lower()}.>"],
        "key": ["device_id", "seq"],
        "batch_messages": 100,
        "ack_wait_seconds": 2,
        "max_seconds": 30,
        **options,
    }
    return Dataset.model_validate({**base, "kind": "stream", "stream": spec})


def collect(ds: Dataset, lake: Lake, broker: Broker, n: int) -> StreamCollector:
    c = StreamCollector(
        ds, lake, f"batch-{n}", f"run-{n}", dt.datetime.now(dt.UTC), {"SHUCANG_SOURCE_NATS": broker.url}
    )
    c.result = c.run()
    return c


def reading(device: str, seq: int, day: str = "2023-12-02") -> dict:
    minute = seq % (24 * 60)
    return {
        "device_id": device,
        "seq": seq,
        "ts": f"{day}T{minute // 60:02d}:{minute % 60:02d}:00+08:00",  # as devices send it: with its offset
        "state": "run",
        "power_kw": round(10 + seq % 7 * 0.5, 1),
        "output_count": seq % 13,
    }


async def _declare(broker: Broker, ds: Dataset) -> None:
    import nats
    from nats.js.api import StorageType, StreamConfig

    nc = await nats.connect(broker.url)
    await nc.jetstream().add_stream(
        StreamConfig(name=ds.stream.stream, subjects=list(ds.stream.subjects), storage=StorageType.FILE)
    )
    await nc.close()


async def _publish(broker: Broker, subject: str, payloads: list[bytes]) -> None:
    import nats

    nc = await nats.connect(broker.url)
    js = nc.jetstream()
    for p in payloads:
        await js.publish(subject, p)
    await nc.close()


def test_mqtt_readings_survive_a_broker_kill_and_land_once_late_ones_in_their_day(broker, tmp_path):
    import paho.mqtt.client as mqtt

    lake = Lake(str(tmp_path / "lake"))
    ds = dataset("TELEMETRY")
    asyncio.run(_declare(broker, ds))  # the warehouse's stream: it keeps what devices publish
    devices = {}
    for d in ("DEV00000001", "DEV00000002", "DEV00000003"):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=d, clean_session=False)
        c.reconnect_delay_set(0.1, 0.5)
        c.connect("127.0.0.1", broker.mqtt_port)
        c.loop_start()
        devices[d] = c
    sent = []

    def publish(device: str, body: bytes):
        """As a device does: a reading the client would not take (not connected: the broker is down) is
        published again once it is back; paho may also send the one it queued — the warehouse's key makes
        that a duplicate, not a second reading."""
        deadline = time.time() + 30
        while True:
            info = devices[device].publish(f"telemetry/{device}/readings", body, qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS or time.time() > deadline:
                sent.append(info)
                return
            time.sleep(0.05)

    for seq in range(300):
        for d in devices:
            publish(d, json.dumps(reading(d, seq)).encode())
        if seq == 150:  # the broker dies mid-stream and comes back; devices resend what was not acknowledged
            broker.kill()
            broker.start()
    publish("DEV00000001", json.dumps(reading("DEV00000001", 5000, day="2023-12-01")).encode())  # a day late
    publish("DEV00000002", b"{not json")
    publish("DEV00000002", json.dumps({"device_id": "DEV00000002", "ts": "2023-12-02T01:00:00+08:00"}).encode())
    publish("DEV00000003", json.dumps({**reading("DEV00000003", 301), "ts": "yesterday"}).encode())
    deadline = time.time() + 30
    while time.time() < deadline and not all(m.is_published() for m in sent):
        time.sleep(0.1)
    for c in devices.values():
        c.loop_stop()
        c.disconnect()
    assert all(m.is_published() for m in sent)  # every reading acknowledged by the broker

    first = collect(ds, lake, broker, 1)
    raw = lake.read("raw", ds.id)
    assert raw.height == 901 and raw["_source_key"].n_unique() == 901  # 3 × 300 + the late one, once each
    assert raw["_changed_at"].null_count() == 0  # delivered when the broker stored it
    assert raw.filter(pl.col("_period") == "2023-12-01")["_source_key"].to_list() == ['["DEV00000001","5000"]']
    # (this batch held malformed messages: read one by one first, the readings still the same text as always)
    assert raw.filter(pl.col("_source_key") == '["DEV00000001","0"]')["power_kw"].item() == "10"
    dead = lake.read(DEAD_LETTERS.zone, DEAD_LETTERS.name)
    assert sorted(r.split(":")[0].split(" (")[0] for r in dead["reason"]) == sorted(
        ["not JSON", "no seq", "ts 'yesterday' is not a time"]
    )
    assert first.dead_letters == 3
    assert collect(ds, lake, broker, 2).result.landed == []  # drained: nothing lands twice


def test_a_consumer_dying_after_the_commit_before_the_ack_lands_nothing_twice(broker, tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"))
    ds = dataset("TEL2")
    asyncio.run(_declare(broker, ds))
    asyncio.run(_publish(broker, "tel2.DEV1", [json.dumps(reading("DEV1", i)).encode() for i in range(500)]))
    from nats.aio.msg import Msg

    async def dies_before_acknowledging(self, *args, **kwargs):
        raise SystemExit("killed after the Delta commit, before the acknowledgement")

    monkeypatch.setattr(Msg, "ack_sync", dies_before_acknowledging)
    with pytest.raises(SystemExit):
        collect(ds, lake, broker, 1)
    monkeypatch.undo()
    assert lake.read("raw", ds.id).height == 100  # the first batch landed; the stream still holds it
    time.sleep(2.5)  # the unacknowledged batch is redelivered after ack_wait
    again = collect(ds, lake, broker, 2)
    raw = lake.read("raw", ds.id)
    assert raw.height == 500 and raw["_source_key"].n_unique() == 500
    assert again.duplicates == 100


def test_a_fetch_whose_deadline_runs_out_ends_the_run_with_what_landed(broker, tmp_path, monkeypatch):
    """nats-py raises asyncio's bare TimeoutError (not its own subclass) when a fetch's deadline runs out
    before its lingering request: the stream is drained for now — the run ends, keeping what it landed."""
    from nats.js.client import JetStreamContext

    lake = Lake(str(tmp_path / "lake"))
    ds = dataset("TEL5")
    asyncio.run(_declare(broker, ds))
    asyncio.run(_publish(broker, "tel5.DEV1", [json.dumps(reading("DEV1", i)).encode() for i in range(150)]))
    fetch, calls = JetStreamContext.PullSubscription.fetch, []

    async def deadline_after_the_first_batches(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise TimeoutError  # asyncio.TimeoutError, as nats-py raises it
        return await fetch(self, *args, **kwargs)

    monkeypatch.setattr(JetStreamContext.PullSubscription, "fetch", deadline_after_the_first_batches)
    first = collect(ds, lake, broker, 1)
    assert len(calls) == 2 and lake.read("raw", ds.id).height == 100 and first.result.landed
    monkeypatch.undo()
    collect(ds, lake, broker, 2)  # the rest, the next run
    assert lake.read("raw", ds.id)["_source_key"].n_unique() == 150


def test_a_consumer_killed_with_sigkill_mid_run_resumes_exactly_once(broker, tmp_path):
    lake_dir = tmp_path / "lake"
    ds = dataset("TEL3", batch_messages=500)
    asyncio.run(_declare(broker, ds))
    asyncio.run(_publish(broker, "tel3.DEV9", [json.dumps(reading("DEV9", i)).encode() for i in range(6000)]))
    script = textwrap.dedent(
        f"""
        import datetime as dt, json, sys
        sys.path.insert(0, {str(PROJECT)!r})
        from assets.ingest.stream import StreamCollector
        from lakehouse.lake import Lake
        from lakehouse.registry import Dataset
        ds = Dataset.model_validate(json.loads({json.dumps(ds.model_dump_json())}))
        StreamCollector(ds, Lake({str(lake_dir)!r}), "batch-k", "run-k", dt.datetime.now(dt.UTC),
                        {{"SHUCANG_SOURCE_NATS": {broker.url!r}}}).run()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT)
    lake = Lake(str(lake_dir))
    deadline = time.time() + 60
    while time.time() < deadline and (lake.table("raw", ds.id) is None or lake.table("raw", ds.id).version() < 3):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    landed = lake.read("raw", ds.id).height
    assert 0 < landed < 6000
    time.sleep(2.5)
    collect(ds, lake, broker, 2)
    raw = lake.read("raw", ds.id)
    assert raw.height == 6000 and raw["_source_key"].n_unique() == 6000


def test_a_batch_of_json_objects_is_checked_column_wise_with_the_same_reasons(broker, tmp_path):
    """The fast path: every message one JSON object on one line, parsed as a whole batch; readings without a
    key, with a time that is none, or with a nested value are still dead letters, each with its reason."""
    lake = Lake(str(tmp_path / "lake"))
    ds = dataset("TEL4")
    asyncio.run(_declare(broker, ds))
    good = [json.dumps(reading("DEV7", i)).encode() for i in range(5)]
    bad = [
        json.dumps({k: v for k, v in reading("DEV7", 5).items() if k != "seq"}).encode(),
        json.dumps({**reading("DEV7", 6), "ts": "yesterday"}).encode(),
        json.dumps({**reading("DEV7", 7), "power_kw": {"kw": 1}}).encode(),
    ]
    asyncio.run(_publish(broker, "tel4.DEV7", good + bad))
    collected = collect(ds, lake, broker, 1)
    raw = lake.read("raw", ds.id)
    assert raw.height == 5 and raw.sort("_row_number")["power_kw"].to_list()[0] == "10"  # JSON 10.0, read as a number
    dead = lake.read(DEAD_LETTERS.zone, DEAD_LETTERS.name).sort("stream_sequence")
    assert dead["reason"].to_list() == [
        "no seq (the key of a reading)",
        "ts 'yesterday' is not a time",
        "nested value in power_kw (a reading is flat)",
    ]
    assert collected.dead_letters == 3 and dead["stream_sequence"].to_list() == [6, 7, 8]


def test_a_reading_resent_is_landed_once_and_one_with_other_values_under_its_key_is_a_dead_letter(broker, tmp_path):
    """(device, sequence) names one reading. The same values again — a resend — land once; other values under
    a key already taken — a device whose counter went back, a buggy gateway — are not dropped as duplicates
    but kept as dead letters saying which columns differ, in the batch and against raw."""
    lake = Lake(str(tmp_path / "lake"))
    ds = dataset("TEL5")
    asyncio.run(_declare(broker, ds))
    one, two = reading("DEV9", 1), reading("DEV9", 2)
    batch = [json.dumps(r).encode() for r in (one, two, one, {**two, "power_kw": 99.5})]
    asyncio.run(_publish(broker, "tel5.DEV9", batch))
    first = collect(ds, lake, broker, 1)
    assert lake.read("raw", ds.id).height == 2 and first.duplicates == 1
    dead = lake.read(DEAD_LETTERS.zone, DEAD_LETTERS.name)
    assert dead["stream_sequence"].to_list() == [4]
    assert dead["reason"][0] == (
        "conflicts with the reading [\"DEV9\",\"2\"] that came before in this batch (power_kw: '11' ≠ '99.5')"
    )
    # later: reading 1 resent (dropped), then reading 1 with another state (a dead letter, raw unchanged)
    asyncio.run(_publish(broker, "tel5.DEV9", [json.dumps(one).encode()]))
    assert collect(ds, lake, broker, 2).duplicates == 1 and lake.read("raw", ds.id).height == 2
    asyncio.run(_publish(broker, "tel5.DEV9", [json.dumps({**one, "state": "stop"}).encode()]))
    assert collect(ds, lake, broker, 3).duplicates == 0 and lake.read("raw", ds.id).height == 2
    dead = lake.read(DEAD_LETTERS.zone, DEAD_LETTERS.name).sort("stream_sequence")
    assert dead["stream_sequence"].to_list() == [4, 6]
    assert dead["reason"][1] == "conflicts with the reading [\"DEV9\",\"1\"] that landed before (state: 'run' ≠ 'stop')"
