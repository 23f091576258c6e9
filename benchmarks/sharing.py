"""Sharing stage of ``make bench``: a 10M-row share served by the Delta Sharing service to the official
``delta-sharing`` client (its own environment, over real HTTP on 127.0.0.1), against reading the same Delta
table locally with deltalake in the same environment — both into a pandas frame, best of 2.

    python -m benchmarks.sharing DATA_DIR ROWS   → one JSON line
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
CLIENT_DIR = ROOT / "tests" / "sharing_client"
CLIENT_ENV = ROOT / ".venv-sharing"


def client_env() -> Path:
    """The official delta-sharing client in its own environment (its pins clash with the project's), created
    with uv from tests/sharing_client/requirements.txt on first use; returns its python."""
    python = CLIENT_ENV / "bin" / "python"
    requirements = CLIENT_DIR / "requirements.txt"
    stamp = CLIENT_ENV / ".requirements"
    if not (python.exists() and stamp.exists() and stamp.read_text() == requirements.read_text()):
        uv = Path(sys.executable).with_name("uv")
        subprocess.run([str(uv), "venv", "--quiet", "--clear", "--python", sys.executable, str(CLIENT_ENV)], check=True)
        subprocess.run(
            [str(uv), "pip", "install", "--quiet", "--python", str(python), "-r", str(requirements)], check=True
        )
        stamp.write_text(requirements.read_text())
    return python


def run_client(python: Path, *args) -> tuple[int, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    done = subprocess.run(
        [str(python), str(CLIENT_DIR / "client.py"), *map(str, args)], capture_output=True, text=True, env=env
    )
    if done.returncode not in (0, 2):
        raise RuntimeError(f"delta-sharing client failed: {done.stderr[-3000:]}")
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _table(rows: int) -> pl.DataFrame:
    firms = 100_000
    return pl.select(i=pl.int_range(rows, dtype=pl.Int64)).select(
        uscc=pl.format("91331000MA{}X", (pl.col("i") % firms).cast(pl.String).str.zfill(7)),
        period=pl.format("2023-{}", ((pl.col("i") // firms) % 12 + 1).cast(pl.String).str.zfill(2)),
        revenue_yuan=(pl.col("i") * 7919 % 10_000_000).cast(pl.Float64) / 100,
        electricity_kwh=(pl.col("i") * 104_729 % 1_000_000).cast(pl.Float64),
        employees=(pl.col("i") % 997).cast(pl.Int64),
    )


def main(data: Path, rows: int) -> dict:
    from exchange.identity import sign
    from exchange.requests import parse
    from exchange.service import Exchange
    from lakehouse.lake import CATALOGUE_EXPORT, Lake

    for old in ("sharing-lake", "sharing-exchange"):
        shutil.rmtree(data / old, ignore_errors=True)
    lake = Lake(str(data / "sharing-lake"))
    lake.overwrite("publish", "operations", _table(rows).to_arrow())
    columns = {"uscc": "L1", "period": "L1", "revenue_yuan": "L2", "electricity_kwh": "L2", "employees": "L2"}
    catalogue = {
        "datasets": [
            {
                "dataset_id": "operations",
                "zone": "publish",
                "share_type": "有条件共享",
                "delta_version": 0,
                "columns": [
                    {
                        "column": c,
                        "grade": g,
                        "effective_grade": g,
                        "role": "none",
                        "classification": "organisation.operations",
                    }
                    for c, g in columns.items()
                ],
            }
        ]
    }
    lake.write_bytes("catalogue", CATALOGUE_EXPORT, json.dumps(catalogue).encode("utf-8"))
    port = free_port()
    folder = data / "sharing-exchange"
    ex = Exchange(lake, folder, endpoint=f"http://127.0.0.1:{port}/delta-sharing", audit_log=folder / "audit.jsonl")
    ex.principals.add_consumer("bench", "bench", "bench", "department", named_firms=True)
    ex.principals.add_steward("bench-steward", "bench", "bench", folder / "keys" / "bench-steward.key")
    today = dt.date.today()
    doc = {
        "datasets": [{"dataset": "operations", "columns": list(columns)}],
        "purpose": "benchmark",
        "legal_basis": "benchmark",
        "period": {"start": today.isoformat(), "end": (today + dt.timedelta(days=1)).isoformat()},
    }
    ex.file(parse(doc, "bench", ex.consumer("bench")), actor="bench")
    ex.decide(
        sign(
            folder / "keys" / "bench-steward.key", "bench-steward", "decide", "bench", "benchmark", decision="approved"
        )
    )
    started = time.perf_counter()
    manifest, profile = ex.build("bench", "bench")
    build_seconds = time.perf_counter() - started
    uri = lake.uri("share", "bench/operations")

    python = client_env()
    local = []
    for _ in range(2):
        code, out = run_client(python, "-", "local", uri)
        if code != 0 or out["rows"] != rows:
            raise RuntimeError(f"the local read failed: {out}")
        local.append(out["seconds"])

    env = {**os.environ, "LAKE_ROOT": lake.root, "SHUCANG_EXCHANGE_DIR": str(ex.folder)}
    server = subprocess.Popen(
        [sys.executable, "-m", "exchange.server", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        served = []
        for _ in range(2):
            code, out = run_client(python, profile, "time", "bench.shucang.operations")
            if code != 0 or out["rows"] != rows:
                raise RuntimeError(f"the client did not read the share: {out}")
            served.append(out["seconds"])
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {
        "rows": rows,
        "files": len(manifest["tables"][0]["files"]),
        "bytes": sum(f["size"] for f in manifest["tables"][0]["files"]),
        "build_seconds": build_seconds,
        "local_seconds": min(local),
        "served_seconds": min(served),
        "seconds": min(served),
        "all_local": local,
        "all_served": served,
    }


if __name__ == "__main__":
    out = main(Path(sys.argv[1]), int(sys.argv[2]))
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
