"""A small publish zone and its catalogue export for the exchange tests: no pipeline needed.

``firms`` has a column of every grade and role the exchange rules distinguish: L1 identity columns, L2
quasi-identifiers (scale, establishment date) and sensitive figures, an L3 figure, an L4 column (never
shared), so requests, policies and gates can be tested on data whose every value is known.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

from exchange.identity import sign
from exchange.requests import parse
from exchange.service import Exchange
from lakehouse.lake import CATALOGUE_EXPORT, Lake

REGIONS = ["331002", "331003", "331004", "331081", "331082", "331083"]
INDUSTRIES = ["3525", "2927", "2929"]

COLUMNS = {  # column → (grade, role, classification)
    "uscc": ("L1", "none", "organisation.identity"),
    "name": ("L1", "none", "organisation.identity"),
    "region_code": ("L1", "none", "organisation.location"),
    "industry_code": ("L1", "none", "organisation.registration"),
    "scale_type": ("L2", "quasi", "organisation.registration"),
    "established_on": ("L2", "quasi", "organisation.registration"),
    "revenue_yuan": ("L2", "sensitive", "organisation.finance"),
    "tax_arrears_yuan": ("L3", "sensitive", "organisation.finance"),
    "legal_rep_ref": ("L4", "direct", "personal.identity"),
}


def firms(n: int = 600) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "uscc": [f"91331000MA{i:07d}X" for i in range(n)],
            "name": [f"台州市测试模具有限公司{i:04d}" for i in range(n)],
            "region_code": [REGIONS[i % len(REGIONS)] for i in range(n)],
            "industry_code": [INDUSTRIES[i % len(INDUSTRIES)] for i in range(n)],
            "scale_type": ["规上" if i % 4 == 0 else "规下" for i in range(n)],
            "established_on": [dt.date(2000 + i % 20, 1 + i % 12, 1 + i % 28) for i in range(n)],
            "revenue_yuan": [1_234_567.0 + 9_876.5 * i for i in range(n)],
            "tax_arrears_yuan": [float(i % 7) * 1000.0 for i in range(n)],
            "legal_rep_ref": [f"k1:{i:032x}" for i in range(n)],
        }
    )


def catalogue_entry(name: str, lake: Lake, share_type: str = "有条件共享", columns: dict | None = None) -> dict:
    columns = columns or COLUMNS
    table = lake.table("publish", name)
    return {
        "dataset_id": name,
        "zone": "publish",
        "asset_key": f"publish/publish_{name}",
        "name_zh": name,
        "share_type": share_type,
        "delta_version": table.version() if table else None,
        "columns": [
            {"column": c, "grade": g, "effective_grade": g, "role": r, "classification": k}
            for c, (g, r, k) in columns.items()
        ],
    }


def write_catalogue(lake: Lake, entries: list[dict]) -> None:
    lake.write_bytes("catalogue", CATALOGUE_EXPORT, json.dumps({"datasets": entries}, ensure_ascii=False).encode())


CONSUMERS = {"department": "dept-app", "enterprise": "bank-app"}  # consumer kind → the registered consumer
STEWARD = "steward-zhang"


def steward_key(ex: Exchange) -> Path:
    return ex.folder.parent / "keys" / f"{STEWARD}.key"


def decide(ex: Exchange, rid: str, decision: str = "approved", reason: str = "依职责"):
    """The steward's decision, signed with the steward's key, as the launchpad or CLI hands it over."""
    return ex.decide(sign(steward_key(ex), STEWARD, "decide", rid, reason, decision=decision))


def revoke(ex: Exchange, rid: str, reason: str = "用途已结束"):
    return ex.revoke(sign(steward_key(ex), STEWARD, "revoke", rid, reason))


def file(ex: Exchange, doc: dict, actor: str = "tester"):
    """File ``doc`` as the consumer it names (an operator filing an inbox request)."""
    return ex.file(parse(doc, doc["id"], ex.consumer(doc["consumer"])), actor=actor)


def published_lake(root: Path, n: int = 600, lake: Lake | None = None) -> Exchange:
    """A lake (``root/lake``, or ``lake``) with ``publish/firms`` (and a never-shared ``publish/secrets``) and
    their catalogue; the exchange folder beside it, with a consumer of each kind and a steward registered."""
    lake = lake or Lake(str(root / "lake"))
    lake.overwrite("publish", "firms", firms(n).to_arrow())
    lake.overwrite("publish", "secrets", firms(10).select("uscc", "name").to_arrow())
    write_catalogue(
        lake,
        [
            catalogue_entry("firms", lake),
            catalogue_entry("secrets", lake, "不予共享", {c: COLUMNS[c] for c in ("uscc", "name")}),
        ],
    )
    ex = Exchange(lake, root / "exchange", endpoint="http://127.0.0.1:1/delta-sharing", audit_log=root / "audit.jsonl")
    ex.principals.add_consumer(CONSUMERS["department"], "区经信局测试应用", "区经信局", "department", named_firms=True)
    ex.principals.add_consumer(CONSUMERS["enterprise"], "某银行测试应用", "某银行", "enterprise", named_firms=True)
    ex.principals.add_steward(STEWARD, "张管理员", "区大数据中心", steward_key(ex))
    return ex


def request(rid: str, columns, rows=None, kind="department", days=30, start=None, dataset="firms") -> dict:
    start = start or dt.date.today()
    ask = {"dataset": dataset, "columns": list(columns)}
    if rows:
        ask["rows"] = rows
    return {
        "id": rid,
        "consumer": CONSUMERS[kind],
        "datasets": [ask],
        "purpose": "测试",
        "legal_basis": "测试依据",
        "period": {"start": start.isoformat(), "end": (start + dt.timedelta(days=days)).isoformat()},
    }
