"""Enterprise-side deliveries: 填报 production reports, equipment register, telemetry, supply orders."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from sourcegen import defects as d
from sourcegen import vocab
from sourcegen.delivery import Delivery, money
from sourcegen.government import months
from sourcegen.model import YEAR, mobiles, monthly_shares, person_names

CORRUPT_PRODUCTION_MONTH = "2023-06"
TELEMETRY_START = dt.datetime(YEAR, 12, 1)
TELEMETRY_INTERVAL_S = 900
TELEMETRY_ROWS_PER_FILE = 2_000_000


def production(
    ent: pl.DataFrame,
    rng: np.random.Generator,
    elec_shares: np.ndarray,
    truth: dict,
    activity: np.ndarray,
    year: int = YEAR,
) -> list[Delivery]:
    """规上 firms report monthly; their electricity is the metered figure give or take 3%, except where a
    mismatch is injected (recorded in the truth for the reconciliation to find)."""
    is_above = ent["above_scale"].to_numpy()
    above = ent.filter(pl.col("above_scale"))
    n, periods = above.height, months(year)
    shares = monthly_shares(rng, n) * activity[is_above]  # output follows a production drop
    metered = above["electricity_kwh"].to_numpy()[:, None] * elec_shares[is_above]
    off = rng.random((n, 12)) < d.RATES["electricity_mismatch"]
    reported = metered * np.where(off, rng.uniform(1.25, 1.6, (n, 12)), rng.uniform(0.97, 1.03, (n, 12)))
    truth["power_vs_production_electricity"] = [
        {"uscc": above["uscc"][int(i)], "period": periods[int(m)]}
        for i, m in zip(*np.nonzero(off), strict=True)
        if periods[int(m)] != CORRUPT_PRODUCTION_MONTH
    ]
    reporter = person_names(rng, n)
    reporter_mobile = mobiles(rng, n)
    unit_price = rng.lognormal(np.log(50.0), 0.6, n)  # yuan per piece
    out = []
    for m, month in enumerate(periods):
        value_wan = above["revenue_wan"].to_numpy() * shares[:, m] * rng.uniform(0.95, 1.05, n)
        df = pl.DataFrame(
            {
                "统一社会信用代码": above["uscc"],
                "企业名称": above["name"],
                "报告期": [month] * n,
                "工业总产值(万元)": money(value_wan),
                "主要产品产量(件)": np.round(value_wan * 10_000 / unit_price).astype(np.int64).astype(str),
                "用电量(千瓦时)": money(reported[:, m], 0),
                "期末从业人员(人)": np.maximum(5, above["employees"].to_numpy() + rng.integers(-3, 4, n)).astype(str),
                "填报人": reporter,
                "填报人手机": reporter_mobile,
                "备注": [""] * n,
            }
        )
        df = d.missing(df, "统一社会信用代码", rng)
        df = d.pii_remarks(df, "备注", rng)
        damage = "unreadable" if month == CORRUPT_PRODUCTION_MONTH else None
        out.append(
            Delivery(
                "ent_production", f"enterprise/production/企业填报_月度生产_{month}.xlsx", df, "xlsx", damage=damage
            )
        )
    return out


def equipment(ent: pl.DataFrame, rng: np.random.Generator) -> tuple[list[Delivery], pl.DataFrame]:
    above = ent["above_scale"].to_numpy()
    count = np.where(
        above,
        rng.integers(3, 13, ent.height),
        np.where(rng.random(ent.height) < 0.2, rng.integers(1, 4, ent.height), 0),
    )
    owner = np.repeat(np.arange(ent.height), count)
    kind = rng.integers(len(vocab.DEVICE_TYPES), size=len(owner))
    rated = np.array([vocab.DEVICE_TYPES[k][1] for k in kind]) * rng.uniform(0.6, 1.6, len(owner))
    commissioned = rng.integers(dt.date(2008, 1, 1).toordinal(), dt.date(2023, 6, 30).toordinal(), len(owner))
    device_id = [f"DEV{i:08d}" for i in range(len(owner))]
    devices = pl.DataFrame(
        {
            "device_id": device_id,
            "uscc": ent["uscc"].to_numpy()[owner],
            "device_name": [vocab.DEVICE_TYPES[k][0] for k in kind],
            "model": [f"{'HX' if k % 2 else 'ZJ'}-{int(r)}" for k, r in zip(kind, rated, strict=True)],
            "rated_power_kw": money(rated, 1),
            "commissioned_on": [dt.date.fromordinal(int(x)).isoformat() for x in commissioned],
        }
    )
    return [Delivery("ent_equipment", "enterprise/equipment/设备台账.jsonl", devices, "jsonl")], devices


def telemetry(devices: pl.DataFrame, rows: int, rng: np.random.Generator) -> list[Delivery]:
    """Every device reports every 15 minutes from 2023-12-01 until about ``rows`` readings exist."""
    k = devices.height
    samples = max(1, -(-rows // k))
    rated = devices["rated_power_kw"].cast(pl.Float64).to_numpy()
    utilisation = rng.beta(5, 2, k)
    u = rng.random((samples, k))
    run = u < utilisation
    idle = ~run & (u < utilisation + (1 - utilisation) * 0.5)
    fault = ~run & ~idle & (rng.random((samples, k)) < 0.15)
    state = np.where(run, "run", np.where(idle, "idle", np.where(fault, "fault", "stop")))
    power = np.where(run, rated * rng.uniform(0.55, 0.95, (samples, k)), np.where(idle, rated * 0.08, 0.0))
    output = np.cumsum(np.where(run, rng.poisson(12, (samples, k)), 0), axis=0)
    ts = [
        (TELEMETRY_START + dt.timedelta(seconds=TELEMETRY_INTERVAL_S * s)).strftime("%Y-%m-%dT%H:%M:%S+08:00")
        for s in range(samples)
    ]
    df = pl.DataFrame(
        {
            "device_id": np.tile(devices["device_id"].to_numpy(), samples),
            "ts": np.repeat(np.array(ts), k),
            "state": state.ravel(),
            "power_kw": np.round(power.ravel(), 2),
            "output_count": output.ravel(),
        }
    ).head(rows)
    out = []
    for part, start in enumerate(range(0, df.height, TELEMETRY_ROWS_PER_FILE), start=1):
        chunk = d.exact_duplicates(df.slice(start, TELEMETRY_ROWS_PER_FILE), rng, "telemetry_duplicate")
        day = chunk["ts"][0][:10]
        out.append(Delivery("ent_telemetry", f"enterprise/telemetry/设备运行_{day}_p{part:03d}.jsonl", chunk, "jsonl"))
    return out


def supply_orders(ent: pl.DataFrame, rng: np.random.Generator) -> list[Delivery]:
    """Mould makers (3525) supply plastics firms (292x); larger firms win more orders (链主 emerge)."""
    moulds = np.flatnonzero(ent["industry_code"].to_numpy() == "3525")
    plastics = np.flatnonzero(ent["industry_code"].to_numpy() != "3525")
    weight = ent["revenue_wan"].to_numpy()
    n_orders = 5 * ent.height
    sup = rng.choice(moulds, n_orders, p=weight[moulds] / weight[moulds].sum())
    buy = rng.choice(plastics, n_orders, p=weight[plastics] / weight[plastics].sum())
    date = rng.integers(dt.date(YEAR, 1, 1).toordinal(), dt.date(YEAR, 12, 31).toordinal(), n_orders)
    df = pl.DataFrame(
        {
            "order_id": [f"PO{YEAR}{i:08d}" for i in range(n_orders)],
            "supplier_uscc": ent["uscc"].to_numpy()[sup],
            "supplier_name": ent["name"].to_numpy()[sup],
            "buyer_uscc": ent["uscc"].to_numpy()[buy],
            "buyer_name": ent["name"].to_numpy()[buy],
            "product": rng.choice(vocab.PRODUCTS_3525, n_orders),
            "amount_yuan": money(rng.lognormal(np.log(180_000), 0.9, n_orders)),
            "order_date": [dt.date.fromordinal(int(x)).isoformat() for x in date],
        }
    ).sort("order_date", "order_id")
    df = d.exact_duplicates(df, rng)
    return [Delivery("ent_supply_orders", f"enterprise/supply/供应链订单_{YEAR}.jsonl", df, "jsonl")]
