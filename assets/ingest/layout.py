"""Check a delivered header against the registered layout; never drop a column silently."""

from __future__ import annotations

import pyarrow as pa

from assets.ingest.rejection import FileRejected, Rejection
from lakehouse.registry import Dataset


def check_header(found: list[str], dataset: Dataset, rows_read: int | None = None) -> list[str]:
    """The delivered headers, cleaned of stray blanks, if they are exactly the registered ones (any order)."""
    aliases = dataset.alias_map
    delivered = [h.strip().strip("\ufeff") for h in found]
    cleaned = [aliases.get(h, h) for h in delivered]  # a configured drift mapping renames, nothing else does
    dupes = sorted({h for h in cleaned if cleaned.count(h) > 1})
    if dupes:
        raise FileRejected(Rejection("duplicate_columns", f"repeated: {', '.join(dupes)}", "header", rows_read))
    expected = dataset.source_headers
    missing = [h for h in expected if h not in cleaned]
    extra = [h for h in cleaned if h not in expected]
    if extra:
        where = ", ".join(f"{h!r} (column {cleaned.index(h) + 1})" for h in extra)
        detail = f"unexpected {where}" + (f"; missing {', '.join(map(repr, missing))}" if missing else "")
        raise FileRejected(Rejection("unexpected_columns", detail, "header", rows_read))
    if missing:
        raise FileRejected(
            Rejection("missing_columns", f"missing {', '.join(map(repr, missing))}", "header", rows_read)
        )
    return cleaned


def raw_schema(dataset: Dataset) -> pa.Schema:
    """Raw keeps every delivered value as text, under the warehouse column names."""
    return pa.schema([pa.field(c.name, pa.string()) for c in dataset.columns])


def to_warehouse_names(batch: pa.RecordBatch, dataset: Dataset) -> pa.RecordBatch:
    aliases = dataset.alias_map
    by_source = {
        aliases.get(n, n): i for i, n in enumerate(name.strip().strip("\ufeff") for name in batch.schema.names)
    }
    arrays = []
    for c in dataset.columns:
        arr = batch.column(by_source[c.source])
        arrays.append(arr if arr.type == pa.string() else arr.cast(pa.string()))
    return pa.RecordBatch.from_arrays(arrays, schema=raw_schema(dataset))
