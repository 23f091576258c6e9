"""The latent enterprise population: one row per firm, consistent across every department's view.

Every source file is a projection of this table, so fusion and the 亩均 evaluation downstream
find the same firm with coherent revenue, tax, land, electricity, value added and emissions.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from sourcegen import vocab
from sourcegen.codes import issue_usccs, make_ric

YEAR = 2023


def _weighted(rng: np.random.Generator, weights: dict[str, float], n: int) -> np.ndarray:
    keys = list(weights)
    p = np.array([weights[k] for k in keys])
    return rng.choice(np.array(keys), size=n, p=p / p.sum())


def person_names(rng: np.random.Generator, n: int) -> list[str]:
    surname = rng.choice(vocab.SURNAMES, n)
    g1 = rng.choice(vocab.GIVEN_CHARS, n)
    g2 = rng.choice(vocab.GIVEN_CHARS, n)
    two = rng.random(n) < 0.7
    return [s + a + (b if t else "") for s, a, b, t in zip(surname, g1, g2, two, strict=True)]


def mobiles(rng: np.random.Generator, n: int) -> list[str]:
    prefix = rng.choice(vocab.MOBILE_PREFIXES, n)
    rest = rng.integers(0, 10**8, n)
    return [f"{p}{r:08d}" for p, r in zip(prefix, rest, strict=True)]


def resident_ids(rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
    """Resident IDs of people born 1960–2000 in 黄岩, with the area code valid in the birth year."""
    start = dt.date(1960, 1, 1).toordinal()
    births = rng.integers(start, dt.date(2000, 12, 31).toordinal(), n)
    seqs = rng.integers(0, 1000, n)
    ids, dates = [], []
    for b, s in zip(births, seqs, strict=True):
        d = dt.date.fromordinal(int(b))
        area = next(code for until, code in vocab.HUANGYAN_RIC_AREA_BY_YEAR if d.year < until)
        ids.append(make_ric(area, d.strftime("%Y%m%d"), int(s)))
        dates.append(d.isoformat())
    return ids, dates


def _unique_names(rng: np.random.Generator, industries: np.ndarray, regions: np.ndarray) -> list[str]:
    seen: set[str] = set()
    names = []
    for ind, reg in zip(industries, regions, strict=True):
        words = vocab.INDUSTRIES[ind][1]
        place = "台州市" + vocab.REGIONS[reg][0] if rng.random() < 0.6 else "台州"
        while True:
            brand_len = 2 if len(seen) < 20_000 else 3
            brand = "".join(rng.choice(vocab.BRAND_CHARS, brand_len))
            name = f"{place}{brand}{words[int(rng.integers(len(words)))]}{rng.choice(vocab.NAME_SUFFIXES)}"
            if name not in seen:
                seen.add(name)
                names.append(name)
                break
    return names


def enterprises(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """N firms with registration facts and the annual economics every department reports on."""
    region = _weighted(rng, vocab.REGION_WEIGHTS, n)
    industry = _weighted(rng, vocab.INDUSTRY_WEIGHTS, n)
    above = rng.random(n) < 0.30  # 规上: revenue of 20 million yuan or more
    revenue_wan = np.where(above, 2000 + rng.lognormal(8.3, 0.9, n), rng.lognormal(6.0, 0.8, n).clip(20, 1990))
    tax_rate = rng.uniform(0.025, 0.065, n)
    tax_wan = revenue_wan * tax_rate
    land_mu = (tax_wan / rng.lognormal(np.log(22.0), 0.5, n)).clip(1.5, None)
    value_added_wan = revenue_wan * rng.uniform(0.16, 0.32, n)
    employees = np.maximum(5, (revenue_wan / rng.lognormal(np.log(95.0), 0.35, n))).round().astype(int)
    rd_wan = revenue_wan * rng.uniform(0.004, 0.055, n)
    energy_tce = value_added_wan / rng.lognormal(np.log(2.6), 0.45, n)
    electricity_kwh = energy_tce * rng.uniform(0.6, 0.9, n) / 0.0001229
    emission_eq_t = value_added_wan / rng.lognormal(np.log(4900.0), 0.6, n)
    established = rng.integers(dt.date(1985, 1, 1).toordinal(), dt.date(2022, 12, 31).toordinal(), n)
    rep_ids, rep_births = resident_ids(rng, n)
    streets = [vocab.REGIONS[r][1][int(rng.integers(len(vocab.REGIONS[r][1])))] for r in region]
    roads = rng.choice(vocab.ROADS, n)
    numbers = rng.integers(1, 999, n)
    return pl.DataFrame(
        {
            "uscc": issue_usccs(rng, list(region)),
            "name": _unique_names(rng, industry, region),
            "region_code": region,
            "industry_code": industry,
            "above_scale": above,
            "legal_rep_name": person_names(rng, n),
            "legal_rep_id_no": rep_ids,
            "legal_rep_birth": rep_births,
            "contact_mobile": mobiles(rng, n),
            "address": [
                f"浙江省台州市{vocab.REGIONS[r][0]}{s}{road}{no}号"
                for r, s, road, no in zip(region, streets, roads, numbers, strict=True)
            ],
            "registered_capital_wan": np.round(np.maximum(10, revenue_wan * rng.uniform(0.05, 0.4, n)), -1),
            "established_on": [dt.date.fromordinal(int(d)) for d in established],
            "revenue_wan": revenue_wan,
            "tax_wan": tax_wan,
            "land_mu": land_mu,
            "value_added_wan": value_added_wan,
            "employees": employees,
            "rd_wan": rd_wan,
            "energy_tce": energy_tce,
            "electricity_kwh": electricity_kwh,
            "emission_eq_t": emission_eq_t,
        }
    )


def monthly_shares(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 12) shares of annual activity per month: a Spring-Festival dip, firm-level noise."""
    season = np.array([0.8, 0.55, 1.0, 1.02, 1.05, 1.05, 1.0, 1.0, 1.05, 1.05, 1.1, 1.3])
    raw = season[None, :] * rng.lognormal(0, 0.08, (n, 12))
    return raw / raw.sum(axis=1, keepdims=True)


DROP_RATE = 0.03  # of firms: a true production drop in the year, recorded in the truth manifest


def production_drops(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[dict]]:
    """(n, 12) multipliers of each firm's monthly activity, and the drops they hold: 3% of firms cut production
    to 30–55% for one to three months from a month between February and October, then recover. Electricity,
    output and tax follow the same cut (a stopped line uses no power, makes nothing, sells nothing)."""
    factor = np.ones((n, 12))
    drops = []
    for i in np.flatnonzero(rng.random(n) < DROP_RATE):
        start = int(rng.integers(1, 10))  # February (1) … October (9): the month before is in the year
        months = int(rng.integers(1, 4))
        cut = float(rng.uniform(0.30, 0.55))
        end = min(start + months, 12)
        factor[i, start:end] = cut
        drops.append({"index": int(i), "start": start, "end": end - 1, "factor": round(cut, 4)})
    return factor, drops


RENAME_RATE = 0.04  # of firms: renamed (名称变更登记) before the year; the registration lists the 曾用名
LAG_RATE = 0.6  # of renamed firms: 统计 and 生态环境 still list them under the former name
WITHOUT_CODE_RATE = 0.4  # of those: the row under the former name lacks the credit code too


def former_names(rng: np.random.Generator, ent: pl.DataFrame) -> tuple[list[str | None], np.ndarray, np.ndarray]:
    """Each firm's former name (None if never renamed), whether departments with slow registers still use it,
    and whether their row under it also lacks the credit code (then only the registration's 曾用名 names it). A former name keeps the firm's place and trade words with another brand, and is no current firm's name:
    a name freed by a rename is not re-registered within the years the warehouse holds."""
    n = ent.height
    renamed = rng.random(n) < RENAME_RATE
    seen = set(ent["name"].to_list())
    former: list[str | None] = [None] * n
    for i in np.flatnonzero(renamed):
        name = ent["name"][int(i)]
        for _ in range(100):
            brand = "".join(rng.choice(vocab.BRAND_CHARS, 2))
            # the brand follows the place prefix: 台州市黄岩区 / 台州 + brand + trade words + suffix
            place = next(
                (p for p in ("台州市" + vocab.REGIONS[r][0] for r in vocab.REGIONS) if name.startswith(p)), "台州"
            )
            candidate = place + brand + name[len(place) + len(brand) :]
            if candidate not in seen:
                seen.add(candidate)
                former[int(i)] = candidate
                break
    lagging = renamed & (rng.random(n) < LAG_RATE) & np.array([f is not None for f in former])
    return former, lagging, lagging & (rng.random(n) < WITHOUT_CODE_RATE)
