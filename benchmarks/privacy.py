"""Bench of the privacy stage: pseudonymise N identifiers (keyed HMAC-SHA-256, as the std zone does) with
the product's transform, against plain DuckDB computing the same HMAC in SQL (sha256 over the key pads).
Both produce identical pseudonyms (checked); each side runs in its own process for its peak memory."""

from __future__ import annotations

import json
import resource
import sys
import time

import polars as pl

from privacy.keys import KeyRing

KEY = "5a" * 32
DOMAIN = "ric"


def identifiers(n: int) -> pl.DataFrame:
    """n distinct resident-ID-shaped strings (the hash does not care whether they are valid)."""
    return pl.DataFrame({"i": pl.int_range(0, n, eager=True)}).select(
        (pl.lit("3310031990") + pl.col("i").cast(pl.String).str.zfill(8)).alias("id")
    )


def product(n: int) -> dict:
    from privacy import transforms

    frame = identifiers(n)
    started = time.perf_counter()
    out = frame.select(transforms.pseudonym(pl.col("id"), KeyRing(1, {1: KEY}, "bench"), DOMAIN).alias("id"))
    seconds = time.perf_counter() - started
    return {"rows": out.height, "seconds": seconds, "sample": out["id"][n // 2]}


def duckdb_baseline(n: int) -> dict:
    import duckdb

    padded = KEY.encode().ljust(64, b"\0")
    ipad, opad = bytes(b ^ 0x36 for b in padded).hex(), bytes(b ^ 0x5C for b in padded).hex()
    con = duckdb.connect(config={"threads": 2})
    con.register("ids", identifiers(n).to_arrow())
    started = time.perf_counter()
    con.execute(
        f"CREATE TABLE p AS SELECT 'k1:' || left(sha256(unhex('{opad}') || unhex(sha256(unhex('{ipad}') || "
        f"('{DOMAIN}' || chr(31) || id)::BLOB))), 32) AS id FROM ids"
    ).fetchall()
    seconds = time.perf_counter() - started
    rows, sample = con.execute(f"SELECT count(*), (SELECT id FROM p LIMIT 1 OFFSET {n // 2}) FROM p").fetchall()[0]
    return {"rows": rows, "seconds": seconds, "sample": sample}


if __name__ == "__main__":
    side, n = sys.argv[1], int(sys.argv[2])
    out = (product if side == "product" else duckdb_baseline)(n)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
