"""Objections (异议) to the 亩均 evaluation: an enterprise disputes a figure its evaluation used, a steward
records the objection with the corrected figure and the enterprise's statement, and later accepts or rejects
it with a reason. Every step is one appended row of ``ops/mujun_objections`` (``lakehouse.tables.OBJECTIONS``)
and an entry in the privileged audit log; an objection's state is its latest event.

An accepted correction replaces the input it names in ``topic_mujun_inputs`` (dbt), so the next build
recomputes the firm's scores, rank and band, and the publish step writes a new version whose change log
holds the before and after. Plain code over the lake, free of Dagster; the console calls it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from lakehouse.lake import Lake
from lakehouse.tables import OBJECTIONS
from privacy.audit import AuditLog
from privacy.scan import pi_in_text

# the inputs of topic_mujun_inputs an objection may correct, in the units of the published formula
INPUTS: dict[str, tuple[str, str]] = {
    "tax_wan": ("税收", "万元"),
    "land_mu": ("用地面积", "亩"),
    "value_added_wan": ("增加值", "万元"),
    "energy_tce": ("能耗", "吨标准煤"),
    "emission_eq_t": ("排放量", "吨"),
    "employees": ("从业人数", "人"),
    "rd_wan": ("研发经费", "万元"),
    "revenue_wan": ("营业收入", "万元"),
    "electricity_10k_kwh": ("用电量", "万千瓦时"),
}
SCHEMA = pa.schema(
    [
        ("objection_id", pa.string()),
        ("event", pa.string()),  # filed | accepted | rejected
        ("event_at", pa.timestamp("us", tz="UTC")),
        ("actor", pa.string()),
        ("uscc", pa.string()),
        ("year", pa.int32()),
        ("input", pa.string()),
        ("corrected_value", pa.float64()),
        ("statement", pa.string()),  # the enterprise's statement (filed)
        ("evidence", pa.string()),  # what backs the corrected figure (filed)
        ("reason", pa.string()),  # the steward's reason (accepted / rejected)
    ]
)
MAX_TEXT = 300


class ObjectionError(ValueError):
    """An objection or a decision that cannot be taken; the message says why."""


@dataclass(frozen=True)
class Objection:
    id: str
    uscc: str
    year: int
    input: str
    corrected_value: float
    statement: str
    evidence: str
    filed_at: dt.datetime
    filed_by: str
    status: str  # filed | accepted | rejected
    decided_by: str | None
    decided_at: dt.datetime | None
    reason: str | None

    @property
    def input_zh(self) -> str:
        return INPUTS[self.input][0]

    @property
    def unit(self) -> str:
        return INPUTS[self.input][1]


def ensure(lake: Lake):
    """The table, created empty the first time (the dbt source reads it before any objection exists)."""
    return lake.ensure(OBJECTIONS.zone, OBJECTIONS.name, SCHEMA)


def _text(value: str, what: str, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ObjectionError(f"{what}不能为空 — {what} is required")
    if len(value) > MAX_TEXT:
        raise ObjectionError(f"{what}最多 {MAX_TEXT} 字 — {what} is at most {MAX_TEXT} characters")
    if value and pl.select(pi_in_text(pl.lit(value))).item():
        # the statement and the reason are published in the explanation: no personal information in them
        raise ObjectionError(
            f"{what}含有个人信息（证件号、手机号等），请删除后再提交 — {what} holds personal information"
        )
    return value


def _append(lake: Lake, row: dict) -> int:
    ensure(lake)
    return lake.append(OBJECTIONS.zone, OBJECTIONS.name, pa.Table.from_pylist([row], schema=SCHEMA))


def all_objections(lake: Lake) -> list[Objection]:
    """Every objection in its current state (its latest event), newest first."""
    table = lake.table(OBJECTIONS.zone, OBJECTIONS.name)
    if table is None:
        return []
    events = pl.from_arrow(table.to_pyarrow_table()).sort("event_at")
    out = []
    for (oid,), rows in events.partition_by("objection_id", as_dict=True, maintain_order=True).items():
        filed = rows.filter(pl.col("event") == "filed").row(0, named=True)
        last = rows.row(-1, named=True)
        decided = last["event"] != "filed"
        out.append(
            Objection(
                oid,
                filed["uscc"],
                filed["year"],
                filed["input"],
                filed["corrected_value"],
                filed["statement"],
                filed["evidence"] or "",
                filed["event_at"],
                filed["actor"],
                last["event"],
                last["actor"] if decided else None,
                last["event_at"] if decided else None,
                last["reason"] if decided else None,
            )
        )
    return sorted(out, key=lambda o: o.filed_at, reverse=True)


def of_firm(lake: Lake, uscc: str, year: int) -> list[Objection]:
    return [o for o in all_objections(lake) if o.uscc == uscc and o.year == year]


def file(
    lake: Lake,
    audit: AuditLog,
    actor: str,
    uscc: str,
    year: int,
    input: str,
    corrected_value,
    statement: str,
    evidence: str = "",
    now: dt.datetime | None = None,
) -> tuple[Objection, int]:
    """Record an enterprise's objection; returns it and the table's new version."""
    if input not in INPUTS:
        raise ObjectionError(f"异议只能更正评价输入 {sorted(INPUTS)} — {input!r} is not an input of the evaluation")
    try:
        value = float(corrected_value)
    except (TypeError, ValueError):
        raise ObjectionError(f"更正值 {corrected_value!r} 不是数字 — the corrected value is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ObjectionError(f"更正值 {value} 须为非负数 — the corrected value must be finite and not negative")
    statement = _text(statement, "企业陈述")
    evidence = _text(evidence, "证明材料", required=False)
    now = now or dt.datetime.now(dt.UTC)
    oid = "OBJ-" + hashlib.sha256(f"{uscc}|{year}|{input}|{now.isoformat()}".encode()).hexdigest()[:10].upper()
    row = {
        "objection_id": oid,
        "event": "filed",
        "event_at": now,
        "actor": actor,
        "uscc": uscc,
        "year": int(year),
        "input": input,
        "corrected_value": value,
        "statement": statement,
        "evidence": evidence,
        "reason": None,
    }
    version = _append(lake, row)
    audit.append("objection.filed", actor=actor, objection_id=oid, uscc=uscc, year=int(year), input=input, value=value)
    return next(o for o in all_objections(lake) if o.id == oid), version


def decide(
    lake: Lake,
    audit: AuditLog,
    actor: str,
    objection_id: str,
    accept: bool,
    reason: str,
    now: dt.datetime | None = None,
) -> tuple[Objection, int]:
    """Accept or reject a filed objection with a reason; returns it and the table's new version."""
    found = next((o for o in all_objections(lake) if o.id == objection_id), None)
    if found is None:
        raise ObjectionError(f"没有异议 {objection_id} — no such objection")
    if found.status != "filed":
        raise ObjectionError(f"异议 {objection_id} 已{found.status}，不能再次处理 — it is {found.status} already")
    reason = _text(reason, "处理理由")
    event = "accepted" if accept else "rejected"
    row = {
        "objection_id": objection_id,
        "event": event,
        "event_at": now or dt.datetime.now(dt.UTC),
        "actor": actor,
        "uscc": found.uscc,
        "year": found.year,
        "input": found.input,
        "corrected_value": found.corrected_value,
        "statement": None,
        "evidence": None,
        "reason": reason,
    }
    version = _append(lake, row)
    audit.append(f"objection.{event}", actor=actor, objection_id=objection_id, reason=reason)
    return next(o for o in all_objections(lake) if o.id == objection_id), version
