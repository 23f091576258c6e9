"""The plain DuckDB baseline: read the same landing files, write the same raw tables (as Parquet).

What a competent engineer would write with DuckDB alone and no warehouse around it: all columns as text,
the same provenance columns, GB18030 transcoded with Python's codec (DuckDB has no GBK reader without
a downloaded extension), XLSX read with fastexcel (likewise). No validation, no rejected area, no log.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import fastexcel

from assets.ingest.collector import landing_files
from lakehouse.registry import registry


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _utf8_copy(path: Path, tmp: Path) -> Path:
    """DuckDB reads UTF-8; a GB18030 file is transcoded first (streamed)."""
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return path
    except UnicodeDecodeError:
        pass
    target = tmp / (path.stem + ".utf8" + path.suffix)
    decoder = codecs.getincrementaldecoder("gb18030")()
    with path.open("rb") as src, target.open("w", encoding="utf-8") as dst:
        while chunk := src.read(8 << 20):
            dst.write(decoder.decode(chunk))
        dst.write(decoder.decode(b"", final=True))
    return target


def run(landing: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "threads": 2})
    rows_total, datasets = 0, {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for ds in registry().datasets:
            started, rows_before = time.perf_counter(), rows_total
            for i, path in enumerate(landing_files(ds, landing)):
                if path.stat().st_size == 0:
                    continue
                sha = _sha256(path)
                cols = ", ".join(f'"{c.source}" AS {c.name}' for c in ds.columns)
                prov = (
                    f"'{ds.department}' AS _source_department, '{path.name}' AS _source_file, "
                    f"'{sha}' AS _file_sha256, row_number() OVER () AS _row_number"
                )
                try:
                    if ds.format == "csv":
                        src = _utf8_copy(path, tmp)
                        select = f"SELECT {cols}, {prov} FROM read_csv('{src}', all_varchar=true, header=true)"
                    elif ds.format == "jsonl":
                        types = ", ".join(f"'{c.source}': 'VARCHAR'" for c in ds.columns)
                        select = (
                            f"SELECT {cols}, {prov} FROM read_json('{path}', "
                            f"format='newline_delimited', columns={{{types}}})"
                        )
                    else:
                        con.register(f"xlsx_{i}", fastexcel.read_excel(path).load_sheet(0, dtypes="string").to_arrow())
                        select = f"SELECT {cols}, {prov} FROM xlsx_{i}"
                    target = out / f"{ds.id}_{i:04d}.parquet"
                    con.execute(f"COPY ({select}) TO '{target}' (FORMAT parquet)").fetchall()
                    rows_total += con.execute(f"SELECT count(*) FROM '{target}'").fetchall()[0][0]
                    if ds.format == "xlsx":
                        con.unregister(f"xlsx_{i}")
                except (duckdb.Error, fastexcel.FastExcelError) as exc:  # damaged deliveries: skipped, not fixed
                    print(f"baseline skipped {path.name}: {type(exc).__name__}", file=sys.stderr)
            datasets[f"raw_{ds.id}"] = {"rows": rows_total - rows_before, "seconds": time.perf_counter() - started}
    return {"rows": rows_total, "datasets": datasets}


def timed_main(run_fn) -> None:
    """``python -m <baseline> SOURCE OUT``: run, then print rows, seconds and peak memory as one JSON line."""
    started = time.perf_counter()
    result = run_fn(Path(sys.argv[1]), Path(sys.argv[2]))
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    timed_main(run)
