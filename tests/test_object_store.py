"""The lake on an object store: every zone on S3-compatible storage by ``LAKE_ROOT`` and
``LAKE_STORAGE_OPTIONS``, tested against a SeaweedFS the tests start (``tests/objectstore.py``) — tables,
files beside them, concurrent commits, processes that exit cleanly after reading, and the whole demo
pipeline publishing on the store exactly what it publishes in a local folder."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest
from objectstore import SeaweedFS

from lakehouse.lake import ZONES, Lake
from orchestration.compare import compare_published

pytestmark = pytest.mark.integration  # a server of its own: make test, not make test-fast

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as s:
        yield s


def test_every_zone_keeps_tables_and_files_on_the_store(store):
    lake = Lake(store.root("zones"), store.storage_options)
    assert not lake.is_local and lake.location == store.root("zones") and lake.local_path("raw", "t") is None
    for zone in ZONES:
        assert lake.overwrite(zone, "t", pl.DataFrame({"k": ["a", "b"], "v": [1, 2]}).to_arrow()) == 0
        assert lake.append(zone, "t", pl.DataFrame({"k": ["c"], "v": [3]}).to_arrow(), metadata={"why": "x"}) == 1
        assert lake.read(zone, "t").sort("k")["v"].to_list() == [1, 2, 3] and lake.row_count(zone, "t") == 3
        assert lake.commits(zone, "t", 1)[0]["why"] == "x"
        assert lake.table_names(zone) == ["t"]
    # a dataset's partition replaced atomically; a file beside the tables; a table removed
    lake.replace_where(
        "quarantine", "findings", pl.DataFrame({"dataset": ["x", "y"], "n": [1, 2]}).to_arrow(), "dataset", "x"
    )
    lake.replace_where("quarantine", "findings", pl.DataFrame({"dataset": ["x"], "n": [9]}).to_arrow(), "dataset", "x")
    assert lake.read("quarantine", "findings").sort("dataset").rows() == [("x", 9), ("y", 2)]
    lake.write_bytes("ops", "lineage/run-1.jsonl", b'{"a": 1}\n')
    assert lake.read_bytes("ops", "lineage/run-1.jsonl") == b'{"a": 1}\n'
    assert lake.list_files("ops", "lineage", ".jsonl") == ["lineage/run-1.jsonl"]
    assert lake.read_bytes("ops", "lineage/none.jsonl") is None
    assert lake.delete("raw", "t") and lake.table("raw", "t") is None and lake.table_names("raw") == []
    # a time-travelled read of the version before the append
    assert pl.read_delta(lake.uri("std", "t"), version=0, storage_options=store.storage_options).height == 2


def test_concurrent_writers_lose_no_commit(store):
    """Three writers append to one table at once: the store's conditional put lets one commit each version,
    the others retry — no lock service, nothing lost, no version twice."""
    lake = Lake(store.root("concurrent"), store.storage_options)
    lake.overwrite("raw", "t", pl.DataFrame({"w": [-1], "i": [-1]}).to_arrow())
    errors: list[BaseException] = []
    returned: dict[tuple[int, int], int] = {}  # (writer, append) → the version the append said it committed

    def writer(w: int) -> None:
        try:
            for i in range(8):
                returned[w, i] = Lake(store.root("concurrent"), store.storage_options).append(
                    "raw", "t", pl.DataFrame({"w": [w], "i": [i]}).to_arrow()
                )
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    frame = lake.read("raw", "t").filter(pl.col("w") >= 0)
    assert sorted(frame.rows()) == [(w, i) for w in range(3) for i in range(8)]
    versions = [c["version"] for c in lake.commits("raw", "t")]
    assert sorted(versions) == list(range(25))
    # each append names its own commit (not whichever version was newest when it looked): the row is new there
    assert sorted(returned.values()) == list(range(1, 25))
    for (w, i), v in list(returned.items())[:6]:
        at = pl.read_delta(lake.uri("raw", "t"), version=v, storage_options=store.storage_options)
        before = pl.read_delta(lake.uri("raw", "t"), version=v - 1, storage_options=store.storage_options)
        assert (w, i) in at.rows() and (w, i) not in before.rows()


READER = """
import json, sys
import polars as pl
from lakehouse.lake import Lake
options = json.loads(sys.argv[2])
lake = Lake(sys.argv[1], options)
print(lake.read("std", "t").height, pl.scan_delta(lake.uri("std", "t"), storage_options=options).collect().height,
      lake.table("std", "t").to_pyarrow_dataset().to_table().num_rows, len(lake.read_bytes("ops", "f.json")))
"""


def test_processes_that_read_the_store_exit_cleanly(store):
    """A process that read tables and files on the store ends with exit code 0 (an abort at interpreter exit
    after S3 reads was seen once in five runs on this kind of machine; here: every run, eight times)."""
    root = store.root("exit")
    lake = Lake(root, store.storage_options)
    lake.overwrite("std", "t", pl.DataFrame({"a": list(range(1000))}).to_arrow())
    lake.write_bytes("ops", "f.json", b"{}")
    for _ in range(8):
        done = subprocess.run(
            [sys.executable, "-c", READER, root, json.dumps(store.storage_options)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == ["1000", "1000", "1000", "2"]


@pytest.mark.long  # make test-store: a second whole demo would add minutes to make test
def test_the_demo_on_the_store_publishes_what_the_local_demo_does(store, demo_site, tmp_path):
    """``make demo`` with ``LAKE_ROOT`` on the store: the same pipeline, every zone written there and none on
    the local disk, every published table equal to the local demo's (same seed, same keys)."""
    root = store.root("demo")
    env = {
        **demo_site.env,
        "SHUCANG_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "SHUCANG_AUDIT_LOG": str(tmp_path / "audit" / "privileged.jsonl"),
        "LAKE_ROOT": root,
        "LAKE_STORAGE_OPTIONS": json.dumps(store.storage_options),
    }
    demo = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert f"lake:       {root}" in demo.stdout and "SUCCESS" in demo.stdout
    assert not (tmp_path / "data" / "lake").exists()  # nothing of the lake on the local disk
    remote = Lake(root, store.storage_options)
    assert set(remote.table_names("raw")) == set(Lake(str(demo_site.lake)).table_names("raw"))
    comparison = compare_published(Lake(str(demo_site.lake)), remote)
    assert comparison.equal, "\n".join(comparison.lines())
    assert len(comparison.tables) >= 10
    # the catalogue and the lineage the run emitted live on the store as well
    assert json.loads(remote.read_bytes("catalogue", "catalogue.json"))["datasets"]
    assert remote.list_files("ops", "lineage", ".jsonl")


def test_the_sharing_service_hands_consumers_store_urls_not_bytes(store, tmp_path):
    """With the lake on the store, a share's files are fetched from the store under pre-signed URLs that the
    service hands out (it serves no bytes); the official client reads through them; a URL whose signature or
    path was changed is refused by the store."""
    import dataclasses
    import hashlib
    import threading
    import time

    import httpx
    import uvicorn
    from exchange_support import decide, file, published_lake, request

    from benchmarks.sharing import client_env, free_port, run_client
    from exchange.server import app, server_config

    port = free_port()
    ex = published_lake(tmp_path, lake=Lake(store.root("sharing"), store.storage_options))
    ex = dataclasses.replace(ex, endpoint=f"http://127.0.0.1:{port}/delta-sharing")
    if file(ex, request("dept", ["uscc", "name", "region_code", "revenue_yuan"])).status == "pending":
        decide(ex, "dept")
    profile = Path(ex.build("dept", "tester")[1])
    token = json.loads(profile.read_text())["bearerToken"]
    server = uvicorn.Server(server_config(app(ex, url_seconds=60), "127.0.0.1", port, "warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}/delta-sharing"
        answer = httpx.post(
            f"{base}/shares/dept/schemas/shucang/tables/firms/query",
            headers={"Authorization": f"Bearer {token}"},
            json={},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        files = [json.loads(line)["file"] for line in answer.text.splitlines() if '"file"' in line]
        manifest = {f["path"]: f["sha256"] for t in ex.state("dept").manifest["tables"] for f in t["files"]}
        assert files and len(files) == len(manifest)
        for f in files:
            assert f["url"].startswith(f"{store.endpoint}/{store.bucket}/sharing/share/dept/firms/")
            assert "X-Amz-Signature=" in f["url"] and f["expirationTimestamp"] > time.time() * 1000
            got = httpx.get(f["url"], timeout=30)  # no token, no key: the signature is the permission
            assert got.status_code == 200
            name = f["url"].split("?")[0].rsplit("/", 1)[-1]
            assert hashlib.sha256(got.content).hexdigest() == manifest[name]
        forged = files[0]["url"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
        assert httpx.get(forged, timeout=30).status_code == 403
        elsewhere = files[0]["url"].replace("/share/dept/firms/", "/publish/firms/")  # the unshared table
        assert httpx.get(elsewhere, timeout=30).status_code == 403
        code, summary = run_client(client_env(), profile, "read", "dept.shucang.firms", tmp_path / "d.parquet")
        assert code == 0 and summary["columns"] == ["uscc", "name", "region_code", "revenue_yuan"]
        assert summary["rows"] == ex.lake.row_count("share", "dept/firms") > 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _upload(store: SeaweedFS, root: str, folder: Path, names: list[str]) -> None:
    import obstore

    from lakehouse.lake import s3_store

    s3 = s3_store(root, store.storage_options)
    for name in names:
        obstore.put(s3, name, (folder / name).read_bytes())


def test_collection_takes_landing_from_a_bucket_as_from_a_folder(store, generated, tmp_path):
    """Departments upload to a bucket: the sensor sees the objects by listing alone, collection mirrors the new
    ones and lands, refuses and logs exactly what it does from a folder; an object is downloaded once (a
    refused file moved away is not fetched back), a new upload is noticed and collected, and the bucket keeps
    every object."""
    import shutil
    import time

    from assets.ingest.collector import Collector
    from lakehouse.registry import registry
    from orchestration.resources import LandingResource
    from sensors.landing import arrivals, scan, scan_landing

    chosen = [registry().dataset(d) for d in ("amr_registration", "tax_monthly", "ent_production")]
    source = generated / "landing"
    names = sorted(
        p.relative_to(source).as_posix() for ds in chosen for p in (source / ds.landing).iterdir() if p.is_file()
    )
    root = store.root("departments")
    _upload(store, root, source, names)
    landing = LandingResource(
        landing_root=str(tmp_path / "mirror"),
        rejected_root=str(tmp_path / "rejected-b"),
        bucket=root,
        bucket_storage_options=store.storage_options,
    )
    folder = tmp_path / "folder"
    for ds in chosen:
        shutil.copytree(source / ds.landing, folder / ds.landing)
    bucket_lake, folder_lake = Lake(str(tmp_path / "lake-b")), Lake(str(tmp_path / "lake-f"))
    mirror = landing.mirror()
    rejected = 0
    for ds in chosen:
        assert set(scan_landing(ds, landing)) == set(scan(ds, folder))  # what the sensor sees: the same files
        synced = mirror.sync(ds)
        assert sorted(synced.downloaded) == sorted(n for n in names if n.startswith(ds.landing + "/"))
        b = Collector(ds, bucket_lake, mirror.cache, tmp_path / "rejected-b", "b1").run()
        f = Collector(ds, folder_lake, folder, tmp_path / "rejected-f", "b1").run()
        assert [o.file for o in b.landed] == [o.file for o in f.landed]
        assert [(o.file, o.rejection.code) for o in b.rejected] == [(o.file, o.rejection.code) for o in f.rejected]
        rejected += len(b.rejected)
        drop = ["_ingested_at"]
        assert bucket_lake.read("raw", ds.id).drop(drop).equals(folder_lake.read("raw", ds.id).drop(drop))
        assert mirror.sync(ds).downloaded == []  # nothing downloaded twice, the refused file included
    assert rejected >= 1  # the damaged production workbook is refused from the bucket too
    log = ["dataset", "file", "status", "rows_read", "sha256"]
    assert (
        bucket_lake.read("ops", "collect_log")
        .select(log)
        .sort("file")
        .equals(folder_lake.read("ops", "collect_log").select(log).sort("file"))
    )
    # a department uploads a new month: the listing shows it, the sync fetches it alone, it lands
    tax = chosen[1]
    before = scan_landing(tax, landing)
    cursor = arrivals(None, before).cursor
    new = f"{tax.landing}/税务_月度申报_2024-01.csv"
    (folder / new).write_bytes(
        (source / f"{tax.landing}/税务_月度申报_2023-12.csv").read_bytes().replace(b"2023-12", b"2024-01")
    )
    _upload(store, root, folder, [new])
    time.sleep(0.01)
    found = arrivals(cursor, scan_landing(tax, landing))
    assert found.files == [new]
    assert mirror.sync(tax).downloaded == [new]
    landed = Collector(tax, bucket_lake, mirror.cache, tmp_path / "rejected-b", "b2").run().landed
    assert [o.file for o in landed] == [new]
    # the bucket still holds every object: collection never deletes or moves what was delivered
    kept = {o["path"] for ds in chosen for o in mirror.objects(ds)}
    assert kept == set(names) | {new}
    # through Dagster: the landing sensor's request from the listing, then the collection asset mirrors and lands
    import dagster as dg

    from assets.collect import _collect_asset
    from orchestration.resources import LakeResource
    from sensors.defs import landing_sensor

    parcels = registry().dataset("land_parcels")
    uploaded = sorted(p.relative_to(source).as_posix() for p in (source / parcels.landing).iterdir() if p.is_file())
    _upload(store, root, source, uploaded)
    shutil.copytree(source / parcels.landing, folder / parcels.landing)
    resources = {"lake": LakeResource(root=str(tmp_path / "lake-b")), "landing": landing}
    request = landing_sensor(parcels)(dg.build_sensor_context(resources=resources))
    assert isinstance(request, dg.RunRequest), request
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [_collect_asset(registry(), parcels)], resources=resources, instance=instance, tags=request.tags
        )
        assert result.success
    f = Collector(parcels, folder_lake, folder, tmp_path / "rejected-f", "b1").run()
    assert f.rejected  # the empty supplement is refused, from the bucket as from the folder
    assert sorted(bucket_lake.read("raw", parcels.id)["_source_file"].unique()) == sorted(
        folder_lake.read("raw", parcels.id)["_source_file"].unique()
    )
    assert bucket_lake.row_count("raw", parcels.id) == folder_lake.row_count("raw", parcels.id) > 0
    assert len(list((tmp_path / "rejected-b" / parcels.id).rglob("*.csv"))) == len(f.rejected)
