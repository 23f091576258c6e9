"""Provenance: the columns every raw and std row carries, so any row traces to the delivery it came from.

A file's rows carry its department, name, SHA-256 and row number; every delivery gets a batch id and the
time it was ingested; ``_period`` is the period the file name declares (a monthly file's month).
"""

from __future__ import annotations

import pyarrow as pa

from lakehouse.registry import Dataset

PROVENANCE = pa.schema(
    [
        pa.field("_source_department", pa.string()),
        pa.field("_source_file", pa.string()),
        pa.field("_file_sha256", pa.string()),
        pa.field("_row_number", pa.int64()),
        pa.field("_batch_id", pa.string()),
        pa.field("_ingested_at", pa.timestamp("us", tz="UTC")),
        pa.field("_period", pa.string()),
    ]
)


# a row read from a database also names the source row it is a version of (its primary key, as JSON): the
# rows per period reconcile source against raw on it, and an update is a later version of the same key
SOURCE_KEY = pa.field("_source_key", pa.string())
# … and what the change was: upsert (read by watermark: the row as it is now), snapshot (the initial copy of a
# change-captured table), insert, update or delete (from the source's change log; a delete holds the old row)
CHANGE = pa.field("_change", pa.string())
CHANGES = ("upsert", "snapshot", "insert", "update", "delete")
# … and when the source changed it, by the source's own account (a row's update time read by watermark, the
# committing transaction's time in a change log, the broker's receipt of a reading; null where the source
# states none, e.g. an interface or a change log's initial snapshot): a version's delivery time, as a file's
# is its upload — collection late by a day does not make the department late
CHANGED_AT = pa.field("_changed_at", pa.timestamp("us", tz="UTC"))


def raw_table_schema(dataset: Dataset) -> pa.Schema:
    """A raw table: every delivered value as text, under the warehouse column names, then provenance."""
    extra = [SOURCE_KEY, CHANGE, CHANGED_AT] if dataset.versioned else []
    return pa.schema([pa.field(c.name, pa.string()) for c in dataset.columns] + list(PROVENANCE) + extra)
