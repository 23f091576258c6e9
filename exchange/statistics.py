"""共享情况分析: sharing statistics per dataset, department and consumer, from the exchange ledger.

Published as ``publish/sharing_statistics`` with a catalogue entry like every published dataset.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from exchange.ledger import replay
from lakehouse.registry import registry

NAME = "sharing_statistics"
KEY = ["dataset", "department", "consumer"]
COLUMNS = {
    "dataset": ("共享的数据集 / the dataset shared", "VARCHAR"),
    "department": ("申请部门 / the consumer's department", "VARCHAR"),
    "consumer": ("申请方 / the consumer", "VARCHAR"),
    "requests": ("申请数 / requests filed", "BIGINT"),
    "approved": ("已批准（含到期、撤销前批准的）/ requests approved", "BIGINT"),
    "rejected": ("已驳回 / requests rejected", "BIGINT"),
    "pending": ("待审批 / requests awaiting a decision", "BIGINT"),
    "revoked": ("已撤销 / shares revoked", "BIGINT"),
    "expired": ("已到期 / shares expired", "BIGINT"),
    "active_shares": ("当前有效共享 / shares active now", "BIGINT"),
    "reads": ("读取次数 / table reads (queries) through the sharing service", "BIGINT"),
    "rows_read": ("读取行数 / rows handed out in those reads", "BIGINT"),
    "denied": ("拒绝访问次数 / calls refused (revoked, expired, not started)", "BIGINT"),
    "last_read_at": ("最近读取时间 / the last read (UTC)", "VARCHAR"),
}
POLARS = {"VARCHAR": pl.String, "BIGINT": pl.Int64}

CATALOGUE_ENTRY = {
    "name": NAME,
    "description": "共享情况分析：按数据集、部门和申请方统计数据申请、审批、共享与读取情况，来自交换台账。",
    "meta": {
        "name_zh": "共享情况分析",
        "name_en": "Sharing statistics",
        "update_cycle": "实时",
        "share_type": "无条件共享",
        "open_type": "不予开放",
        "disclosure": "identified",  # names the consumers (organisations)
        "owner": registry().defaults.steward,
        "classification": "metadata",
        "key": KEY,
    },
    "columns": {
        c: {"description": d, "data_type": t, "meta": {"classification": "metadata", "role": "none"}}
        for c, (d, t) in COLUMNS.items()
    },
}


def grades() -> dict[str, dict]:
    """Every column is metadata about the exchange (L1): nothing of the shared data itself."""
    return {c: {"level": "L1", "inherited": "L1", "role": "none", "transform": None} for c in COLUMNS}


def statistics(entries: list[dict], now: dt.datetime | None = None) -> pl.DataFrame:
    now = now or dt.datetime.now(dt.UTC)
    states = replay(entries)
    reads: dict[tuple[str, str], dict] = {}
    denied: dict[str, int] = {}
    for e in entries:
        d = e.get("detail", {})
        if e["action"] == "share.read":
            r = reads.setdefault((d["request_id"], d["dataset"]), {"reads": 0, "rows_read": 0, "last_read_at": None})
            r["reads"] += 1
            r["rows_read"] += int(d.get("rows", 0))
            r["last_read_at"] = max(filter(None, [r["last_read_at"], e["at"]]))
        elif e["action"] == "share.denied":
            denied[d["request_id"]] = denied.get(d["request_id"], 0) + 1
    rows = []
    for s in states.values():
        c = s.request["consumer"]
        decided = s.decided_by is not None
        for ask in s.request["datasets"]:
            r = reads.get((s.id, ask["dataset"]), {})
            rows.append(
                {
                    "dataset": ask["dataset"],
                    "department": c["department"],
                    "consumer": c["name"],
                    "requests": 1,
                    "approved": int(decided and s.status in ("approved", "revoked", "expired") and bool(s.pins)),
                    "rejected": int(s.status == "rejected"),
                    "pending": int(s.status == "pending"),
                    "revoked": int(s.status == "revoked"),
                    "expired": int(s.status == "expired" or (s.status == "approved" and now >= s.expires_at)),
                    "active_shares": int(s.active(now)),
                    "reads": r.get("reads", 0),
                    "rows_read": r.get("rows_read", 0),
                    "denied": denied.get(s.id, 0),
                    "last_read_at": r.get("last_read_at"),
                }
            )
    schema = {c: POLARS[t] for c, (_, t) in COLUMNS.items()}
    if not rows:
        return pl.DataFrame(schema=schema)
    frame = pl.DataFrame(rows, schema=schema)
    sums = [pl.col(c).sum() for c in COLUMNS if c not in KEY and c != "last_read_at"]
    return frame.group_by(KEY).agg(*sums, pl.col("last_read_at").max()).select(list(COLUMNS)).sort(KEY)
