"""Generate the demo sources and their truth manifest, deterministically from a seed."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from sourcegen import enterprise, government, timing
from sourcegen.defects import LABELLED_REMARKS, RATES, UNIT_VARIANT_RATES, split_markers
from sourcegen.delivery import Delivery
from sourcegen.model import YEAR, enterprises, former_names, monthly_shares, production_drops
from sourcegen.writers import write

ENTERPRISES_PER_SCALE = 1_000
TELEMETRY_ROWS_PER_SCALE = 100_000
DEFAULT_SEED = 20231231


def generate(
    out: Path,
    scale: float = 1.0,
    seed: int = DEFAULT_SEED,
    on_delivery: Callable[[Delivery, dict], None] | None = None,
    history_years: int = 0,
) -> dict:
    """Write ``out/landing/**`` (what the pipeline reads) and ``out/truth/manifest.json`` (what it never reads).
    ``on_delivery``: called with each delivery (its values as delivered, defect markers removed) and its
    manifest entry (path, rows, when it was delivered), after its file is written — the live demo loads the
    same deliveries into databases, an interface and a broker. ``history_years``: that many earlier years of
    the monthly filings and annual statistics besides (``history``) — the year's own data stays the same."""
    rng = np.random.default_rng(seed)
    LABELLED_REMARKS.clear()
    n = max(20, int(ENTERPRISES_PER_SCALE * scale))
    ent = enterprises(rng, n)
    inconsistencies: dict = {}  # cross-source disagreements injected on purpose, for the reconciliation
    elec_shares = monthly_shares(rng, n)  # one monthly profile per firm, metered and reported alike
    # true production drops and recoveries (their own random stream: the rest of the data does not move)
    activity, drops = production_drops(np.random.default_rng(seed + 2), n)
    elec_shares = elec_shares * activity
    facts: dict = {}  # per-firm facts a department's file states, for the truth (status, tax as filed, ...)
    # renamed firms (their own random stream): the registration lists the former name, slow registers use it
    former, facts["former_name_in_use"], facts["former_name_without_code"] = former_names(
        np.random.default_rng(seed + 3), ent
    )
    ent = ent.with_columns(pl.Series("former_name", former, dtype=pl.String))
    facts["electricity_kwh_metered"] = ent["electricity_kwh"].to_numpy() * elec_shares.sum(axis=1)
    deliveries = [
        *government.registration(ent, rng, facts),
        *government.tax_monthly(ent, rng, facts, activity),
        *government.stats_annual(ent, rng, inconsistencies, facts),
    ]
    accounts = government.supply_accounts(n, rng)
    deliveries += [
        *government.power_monthly(ent, rng, elec_shares, accounts),
        *government.land_parcels(ent, rng),
        *government.eco_emissions(ent, rng, facts),
        *enterprise.production(ent, rng, elec_shares, inconsistencies, activity),
    ]
    equipment, devices = enterprise.equipment(ent, rng)
    deliveries += equipment
    deliveries += enterprise.telemetry(devices, max(1000, int(TELEMETRY_ROWS_PER_SCALE * scale)), rng)
    deliveries += enterprise.supply_orders(ent, rng)

    landing = out / "landing"
    files, defects = [], {}
    # when each file arrives (its own random stream: the data does not depend on it)
    arrivals = timing.schedule([x.path for x in deliveries], np.random.default_rng(seed + 1), dt.date(2024, 1, 2))
    for k in range(1, history_years + 1):  # earlier years, each from streams of its own
        earlier = history(ent, facts, accounts, YEAR - k, seed + 100 * k)
        deliveries += earlier
        arrivals += timing.schedule(
            [x.path for x in earlier], np.random.default_rng(seed + 100 * k + 1), dt.date(2024, 1, 2)
        )
    for delivery, arrival in zip(deliveries, arrivals, strict=True):
        delivery.frame, rows_by_defect = split_markers(delivery.frame)
        entry = {**write(delivery, landing), **arrival}
        at = dt.datetime.fromisoformat(arrival["delivered_at"]).timestamp()
        os.utime(landing / delivery.path, (at, at))
        files.append(entry)
        if on_delivery is not None:
            on_delivery(delivery, entry)
        present = entry["rows"] if entry["rows"] is not None else 0
        for defect, rows in rows_by_defect.items():
            rec = defects.setdefault(
                f"{delivery.dataset}.{defect}", {"dataset": delivery.dataset, "defect": defect, "rows": []}
            )
            # rows past a truncation never reached the warehouse; an unreadable file delivers none
            rec["rows"] += [[delivery.path, r] for r in rows if r <= present]
    for rec in defects.values():
        rec["count"] = len(rec["rows"])
        rec["population"] = sum(f["rows"] or 0 for f in files if f["dataset"] == rec["dataset"])
        rec["declared_rate"] = (
            UNIT_VARIANT_RATES.get(rec["dataset"]) if rec["defect"] == "unit_variant" else RATES.get(rec["defect"])
        )
    manifest = {
        "seed": seed,
        "scale": scale,
        "history_years": history_years,
        "enterprises": n,
        "above_scale": int(ent["above_scale"].sum()),
        "devices": devices.height,
        "declared_rates": {**RATES, **{f"unit_variant.{k}": v for k, v in UNIT_VARIANT_RATES.items()}},
        "files": files,
        "defects": dict(sorted(defects.items())),
        "inconsistencies": inconsistencies,
        # true production drops (and the recovery after them), each firm's activity cut for those months
        "production_drops": [
            {
                "uscc": ent["uscc"][d["index"]],
                "start": f"{YEAR}-{d['start'] + 1:02d}",
                "end": f"{YEAR}-{d['end'] + 1:02d}",
                "factor": d["factor"],
            }
            for d in drops
        ],
        # every remark written with personal information in it, its spans labelled [start, end, kind]
        "pii_remarks": list(LABELLED_REMARKS),
    }
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    (truth / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    # the latent firm plus what its departments state about it: the truth the evaluations are measured against
    facts.pop("sales_share")
    ent.with_columns(pl.Series(k, v) for k, v in facts.items()).write_parquet(truth / "enterprises.parquet")
    return manifest


HISTORY_DATASETS = ("tax_monthly", "stats_annual", "power_monthly", "ent_production")  # what ``history`` delivers
GROWTH = (0.06, 0.08)  # a firm's yearly growth: lognormal, mean and spread of its log


def history(ent: pl.DataFrame, facts: dict, accounts: dict, year: int, seed: int) -> list[Delivery]:
    """A year before ``YEAR`` of the monthly filings (税务, 电力, the firms' production reports) and of the
    annual statistics, for a deployment that holds more than one year (the bench's 24 months): the firms
    established by the year's end, each smaller by its own growth, with activity, production drops and
    row defects drawn anew; the same supply accounts; the former names as in ``YEAR``; no damaged file.
    The manifest lists their files and injected defects like any other; the firms' facts of the truth
    (``enterprises.parquet``) state ``YEAR`` only: these deliveries are volume, not a second answer key."""
    rng = np.random.default_rng(seed)
    alive = (ent["established_on"] <= dt.date(year, 12, 31)).to_numpy()
    shrink = np.exp(-rng.normal(*GROWTH, ent.height))[alive]
    was = ent.filter(pl.Series(alive)).with_columns(
        pl.col(c) * pl.Series(shrink)
        for c in ("revenue_wan", "tax_wan", "value_added_wan", "rd_wan", "energy_tce", "electricity_kwh")
    )
    n = was.height
    activity, _ = production_drops(np.random.default_rng(seed + 2), n)
    elec_shares = monthly_shares(rng, n) * activity
    then = {k: v[alive] for k, v in facts.items() if k in ("former_name_in_use", "former_name_without_code")}
    return [
        *government.tax_monthly(was, rng, then, activity, year),
        *government.stats_annual(was, rng, {}, then, year),
        *government.power_monthly(was, rng, elec_shares, government.firms_accounts(accounts, alive), year),
        *enterprise.production(was, rng, elec_shares, {}, activity, year),
    ]
