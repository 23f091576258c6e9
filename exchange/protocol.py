"""Delta Sharing protocol pieces the service needs, free of HTTP: the capabilities header, per-file
statistics, pruning files by a client's predicate and limit hints, timestamps, and the response lines in
the two formats (``parquet``, the default, and ``delta``, which the official client asks for with
``use_delta_format=True``). See the protocol (PROTOCOL.md of delta-io/delta-sharing, Apache-2.0).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

CAPABILITIES = "delta-sharing-capabilities"


def response_format(header: str | None) -> str:
    """``delta`` when the client asks for delta format only (or for delta first), else ``parquet``: a server
    may answer ``responseformat=delta,parquet`` in parquet when the table has no advanced features, and
    ours have none."""
    for capability in (header or "").split(";"):
        key, _, values = capability.partition("=")
        if key.strip().lower() == "responseformat":
            formats = [v.strip().lower() for v in values.split(",") if v.strip()]
            if formats and formats[0] == "delta" and "parquet" not in formats:
                return "delta"
    return "parquet"


def parse_timestamp(text: str) -> dt.datetime:
    """A protocol timestamp (``2022-01-01T00:00:00Z`` / ISO 8601 with an offset) as an aware datetime."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{text!r} is not a timestamp")
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r}: a timestamp names its time zone (e.g. …Z)")
    return value


def file_stats(add: dict[str, Any], columns: list[str]) -> dict:
    """The per-file statistics of a flattened Delta add action (``min.<col>``, ``max.<col>``,
    ``null_count.<col>``) in the protocol's shape."""
    stats: dict[str, Any] = {"numRecords": int(add["num_records"])}
    for part, key in (("minValues", "min"), ("maxValues", "max"), ("nullCount", "null_count")):
        values = {c: _json_value(add.get(f"{key}.{c}")) for c in columns if add.get(f"{key}.{c}") is not None}
        if values:
            stats[part] = values
    return stats


def _json_value(v):
    if isinstance(v, dt.datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


# --- pruning by JSON predicate hints ------------------------------------------------------------------------
_CAST = {
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "string": str,
    "bool": lambda v: str(v).lower() == "true",
    "date": lambda v: str(v)[:10],
    "timestamp": lambda v: str(v),
}


class Unknown(Exception):
    """A predicate the server cannot evaluate on statistics: the file is kept (hints are best effort)."""


def _leaf(node: dict, stats: dict) -> tuple[Any, Any]:
    """(low, high) of a leaf over one file: a literal is one value; a column its min and max."""
    cast = _CAST.get(node.get("valueType", ""))
    if cast is None:
        raise Unknown(node)
    if node.get("op") == "literal":
        value = cast(node["value"])
        return value, value
    if node.get("op") == "column":
        name = node.get("name")
        low, high = stats.get("minValues", {}).get(name), stats.get("maxValues", {}).get(name)
        if low is None or high is None:
            raise Unknown(node)
        return cast(low), cast(high)
    raise Unknown(node)


def may_match(predicate: dict, stats: dict) -> bool:
    """Whether a file with these statistics may hold a row satisfying ``predicate`` (False only when the
    statistics prove it cannot). Unknown ops, types or columns keep the file."""
    try:
        return _may(predicate, stats)
    except (Unknown, KeyError, TypeError, ValueError, IndexError, RecursionError):
        return True


def _may(p: dict, stats: dict) -> bool:
    op, kids = p.get("op"), p.get("children") or []
    if op == "and":
        return all(_may(k, stats) for k in kids)
    if op == "or":
        return any(_may(k, stats) for k in kids)
    if op == "not":
        return True  # a negation cannot be decided on min/max alone: keep the file
    if op == "isNull":
        name = kids[0].get("name")
        nulls = stats.get("nullCount", {}).get(name)
        return nulls is None or nulls > 0
    if op in ("equal", "lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual") and len(kids) == 2:
        (a_lo, a_hi), (b_lo, b_hi) = _leaf(kids[0], stats), _leaf(kids[1], stats)
        return {
            "equal": a_lo <= b_hi and b_lo <= a_hi,
            "lessThan": a_lo < b_hi,
            "lessThanOrEqual": a_lo <= b_hi,
            "greaterThan": a_hi > b_lo,
            "greaterThanOrEqual": a_hi >= b_lo,
        }[op]
    raise Unknown(p)


def prune(files: list[dict], stats: list[dict], json_predicate: str | None, limit: int | None) -> list[int]:
    """Indexes of the files to hand out: those whose statistics may satisfy the predicate, then — with a
    limit — the first ones until they hold at least ``limit`` rows. Best effort, as the protocol says."""
    keep = list(range(len(files)))
    if json_predicate:
        try:
            predicate = json.loads(json_predicate)
        except (ValueError, RecursionError):
            predicate = None
        if isinstance(predicate, dict):
            keep = [i for i in keep if may_match(predicate, stats[i])]
    if limit is not None:
        out, rows = [], 0
        for i in keep:
            if rows >= limit:
                break
            out.append(i)
            rows += stats[i]["numRecords"]
        keep = out
    return keep


# --- response lines ---------------------------------------------------------------------------------------
def protocol_line(fmt: str, reader: int = 1, writer: int = 2, reader_features=None, writer_features=None) -> dict:
    """The table's protocol: in delta format as the Delta log has it (a change data feed needs writer
    version 4), in parquet format the reader version only."""
    if fmt == "delta":
        delta = {"minReaderVersion": reader, "minWriterVersion": writer}
        if reader_features:
            delta["readerFeatures"] = list(reader_features)
        if writer_features:
            delta["writerFeatures"] = list(writer_features)
        return {"protocol": {"deltaProtocol": delta}}
    return {"protocol": {"minReaderVersion": reader}}


def metadata_line(fmt: str, meta: dict, version: int | None, size: int, num_files: int) -> dict:
    """``meta``: id, name, description, schemaString, partitionColumns, configuration, createdTime. The same
    Delta metadata either wrapped (delta format) or flat beside size and file count (parquet format)."""
    described = {
        "id": meta["id"],
        "name": meta["name"],
        "description": meta["description"],
        "format": {"provider": "parquet", "options": {}},
        "schemaString": meta["schemaString"],
        "partitionColumns": meta["partitionColumns"],
        "configuration": meta["configuration"],
    }
    if fmt == "delta":
        line = {"deltaMetadata": {**described, "createdTime": meta["createdTime"]}}
    else:
        line = dict(described)
    line |= {"size": size, "numFiles": num_files}
    if version is not None:
        line["version"] = version
    return {"metaData": line}


def file_line(
    fmt: str,
    *,
    url: str,
    file_id: str,
    size: int,
    stats: dict,
    expires_ms: int,
    partition_values: dict,
    modified_ms: int,
    version: int | None = None,
    timestamp_ms: int | None = None,
    action: str = "file",
) -> dict:
    """One data file: ``file`` in a snapshot, ``add`` in a change feed (parquet format); in delta format
    always a ``file`` wrapping the Delta add action with the signed URL as its path."""
    if fmt == "delta":
        add = {
            "path": url,
            "partitionValues": partition_values,
            "size": size,
            "modificationTime": modified_ms,
            "dataChange": True,
            "stats": json.dumps(stats),
        }
        line = {"id": file_id, "expirationTimestamp": expires_ms, "deltaSingleAction": {"add": add}}
        if version is not None:
            line["version"], line["timestamp"] = version, timestamp_ms
        return {"file": line}
    line = {
        "url": url,
        "id": file_id,
        "partitionValues": partition_values,
        "size": size,
        "stats": json.dumps(stats),
        "expirationTimestamp": expires_ms,
    }
    if version is not None:
        line["version"], line["timestamp"] = version, timestamp_ms
    return {action: line}
