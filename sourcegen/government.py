"""Government departments' deliveries: 市场监管, 税务, 统计, 电力, 自然资源, 生态环境."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from sourcegen import defects as d
from sourcegen.delivery import Delivery, money
from sourcegen.model import YEAR, monthly_shares


def months(year: int) -> list[str]:
    return [f"{year}-{m:02d}" for m in range(1, 13)]


TRUNCATED_TAX_MONTH = "2023-09"
DRIFTED_POWER_MONTH = "2023-07"


def _registered_name(ent: pl.DataFrame, lagging: np.ndarray) -> pl.Series:
    """The name a department with a slow register lists: the former name where it has not caught up."""
    return pl.Series(np.where(lagging, ent["former_name"].fill_null("").to_numpy(), ent["name"].to_numpy()))


def _former_name_without_code(df: pl.DataFrame, facts: dict, rows: np.ndarray) -> pl.DataFrame:
    """Rows listed under a former name that also lack the credit code (drawn with the renames, so the other
    defects do not move): only the registration's 曾用名 names the firm."""
    mask = facts["former_name_without_code"][rows] & d.clean_mask(df)
    return d.missing_where(df, "统一社会信用代码", mask)


def registration(ent: pl.DataFrame, rng: np.random.Generator, facts: dict) -> list[Delivery]:
    n = ent.height
    status = np.where(rng.random(n) < 0.97, "存续", "吊销")
    facts["status"] = status
    df = pl.DataFrame(
        {
            "统一社会信用代码": ent["uscc"],
            "企业名称": ent["name"],
            "法定代表人": ent["legal_rep_name"],
            "法定代表人证件号码": ent["legal_rep_id_no"],
            "联系电话": ent["contact_mobile"],
            "住所": ent["address"],
            "行政区划代码": ent["region_code"],
            "行业代码": ent["industry_code"],
            "注册资本(万元)": money(ent["registered_capital_wan"].to_numpy()),
            "成立日期": [x.isoformat() for x in ent["established_on"]],
            "登记状态": status,
            "企业规模": np.where(ent["above_scale"].to_numpy(), "规上", "规下"),
            "曾用名": ent["former_name"].fill_null(""),
            "备注": [""] * n,
        }
    )
    df = d.missing(df, "企业名称", rng)
    df = d.invalid_check(df, "统一社会信用代码", rng)
    df = d.fullwidth_or_spaces(df, ["统一社会信用代码"], rng)
    df = d.nonstandard_dates(df, "成立日期", rng)
    df = d.pii_remarks(df, "备注", rng)
    df = d.near_duplicates(df, "企业名称", rng)
    return [Delivery("amr_registration", "amr/registration/市场监管_企业登记信息_2023-12-31.csv", df, "csv", "gb18030")]


def tax_monthly(
    ent: pl.DataFrame, rng: np.random.Generator, facts: dict, activity: np.ndarray, year: int = YEAR
) -> list[Delivery]:
    """Monthly filings; 2% of Jan–Oct filings are corrected (更正) one or two months later, and the correction
    is what the firm owes: ``facts`` gets each firm's annual tax and revenue as filed, corrections applied."""
    n, periods = ent.height, months(year)
    shares = monthly_shares(rng, n) * activity  # a production drop cuts sales too
    facts["sales_share"] = shares.sum(axis=1)  # the year's sales as a share of a year without a drop
    revenue_yuan = ent["revenue_wan"].to_numpy()[:, None] * shares * 10_000
    tax_yuan = revenue_yuan * (ent["tax_wan"] / ent["revenue_wan"]).to_numpy()[:, None]
    in_wan = rng.random((n, 12)) < d.UNIT_VARIANT_RATES["tax_monthly"]
    frames: dict[str, list[pl.DataFrame]] = {m: [] for m in periods}

    def rows(idx: np.ndarray, month: int, kind: str, factor: np.ndarray) -> pl.DataFrame:
        wan = in_wan[idx, month]
        scale = np.where(wan, 1 / 10_000, 1.0)
        filed = dt.date(year + (month == 11), (month + 1) % 12 + 1, 1) + dt.timedelta(days=int(rng.integers(14)))
        return pl.DataFrame(
            {
                "纳税人识别号": ent["uscc"].gather(idx),
                "纳税人名称": ent["name"].gather(idx),
                "所属期": [periods[month]] * len(idx),
                "申报类型": [kind] * len(idx),
                "营业收入": money(revenue_yuan[idx, month] * factor * scale),
                "实缴税额": money(tax_yuan[idx, month] * factor * scale),
                "金额单位": np.where(wan, "万元", "元"),
                "申报日期": [filed.isoformat()] * len(idx),
                d.marker("unit_variant"): wan,
                d.marker("late_correction"): [kind == "更正"] * len(idx),
            }
        )

    everyone = np.arange(n)
    for m in range(12):
        frames[periods[m]].append(rows(everyone, m, "正常", np.ones(n)))
    corrections: list[tuple[int, int]] = []
    filed = np.ones((n, 12))  # what each filing finally says, as a factor of the original
    for m in range(10):  # corrections of Jan–Oct arrive one or two months later
        idx = np.flatnonzero(d.pick(rng, n, d.RATES["late_correction"]))
        lag = 1 + (rng.random(len(idx)) < 0.5)
        for lg in (1, 2):
            sel = idx[lag == lg]
            factor = rng.uniform(0.85, 1.15, len(sel))
            frames[periods[m + lg]].append(rows(sel, m, "更正", factor))
            filed[sel, m] = factor
        corrections.extend((int(i), m) for i in idx)
    facts["tax_paid_yuan"] = (tax_yuan * filed).sum(axis=1)
    facts["tax_revenue_yuan"] = (revenue_yuan * filed).sum(axis=1)
    out = []
    for month, parts in frames.items():
        df = pl.concat(parts)
        df = d.missing(df, "纳税人识别号", rng)
        df = d.fullwidth_or_spaces(df, ["纳税人识别号"], rng)
        df = d.nonstandard_dates(df, "所属期", rng, month_only=True)
        df = d.exact_duplicates(df, rng)
        damage = "truncated" if month == TRUNCATED_TAX_MONTH else None
        out.append(Delivery("tax_monthly", f"tax/monthly/税务_月度申报_{month}.csv", df, "csv", "utf-8-sig", damage))
        if damage:  # after the rejection, the department re-sends the month in full under a new name
            out.append(Delivery("tax_monthly", f"tax/monthly/税务_月度申报_{month}_重报.csv", df, "csv", "utf-8-sig"))
    return out


def supply_accounts(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each firm's electricity supply accounts: one to three, splitting its consumption in fixed parts."""
    accounts = 1 + (rng.random(n) < 0.3) + (rng.random(n) < 0.1)
    owner = np.repeat(np.arange(n), accounts)
    split = rng.dirichlet(np.ones(3), n)
    part = np.concatenate([split[i, : accounts[i]] / split[i, : accounts[i]].sum() for i in range(n)])
    account_no = np.array([f"33{x:08d}" for x in rng.choice(10**8, len(owner), replace=False)])
    voltage = rng.choice(["10kV", "0.4kV", "20kV"], len(owner), p=[0.6, 0.3, 0.1])
    return {"owner": owner, "part": part, "account_no": account_no, "voltage": voltage}


def firms_accounts(accounts: dict[str, np.ndarray], firms: np.ndarray) -> dict[str, np.ndarray]:
    """The accounts of the firms ``firms`` (a mask) selects, their owners numbered as the firms' rows."""
    keep = firms[accounts["owner"]]
    renumbered = np.cumsum(firms) - 1
    return {**{k: v[keep] for k, v in accounts.items()}, "owner": renumbered[accounts["owner"][keep]]}


def power_monthly(
    ent: pl.DataFrame,
    rng: np.random.Generator,
    elec_shares: np.ndarray,
    accounts: dict[str, np.ndarray],
    year: int = YEAR,
) -> list[Delivery]:
    """Metered kWh per supply account (``supply_accounts``) and month."""
    owner, part, voltage = accounts["owner"], accounts["part"], accounts["voltage"]
    account_no = accounts["account_no"].tolist()
    kwh = ent["electricity_kwh"].to_numpy()[owner][:, None] * part[:, None] * elec_shares[owner]
    out = []
    for m, month in enumerate(months(year)):
        mwh = rng.random(len(owner)) < d.UNIT_VARIANT_RATES["power_monthly"]
        df = pl.DataFrame(
            {
                "用电户号": account_no,
                "户名": ent["name"].to_numpy()[owner],
                "统一社会信用代码": ent["uscc"].to_numpy()[owner],
                "用电月份": [month] * len(owner),
                "用电量": np.where(mwh, money(kwh[:, m] / 1000, 3), money(kwh[:, m], 0)),
                "计量单位": np.where(mwh, "MWh", "kWh"),
                "电压等级": voltage,
                d.marker("unit_variant"): mwh,
            }
        )
        df = d.missing(df, "统一社会信用代码", rng)
        df = d.nonstandard_dates(df, "用电月份", rng, month_only=True)
        df = d.exact_duplicates(df, rng)
        drift = {"用电量": "用电量(千瓦时)"} if month == DRIFTED_POWER_MONTH else None
        out.append(
            Delivery(
                "power_monthly",
                f"power/monthly/电力_月度用电_{month}.csv",
                df,
                "csv",
                "gb18030",
                "schema_drift" if drift else None,
                drift,
            )
        )
    return out


def stats_annual(
    ent: pl.DataFrame, rng: np.random.Generator, truth: dict, facts: dict, year: int = YEAR
) -> list[Delivery]:
    above = ent.filter(pl.col("above_scale"))
    # statistics and tax revenue never agree exactly; both see a production drop (the year's sales share)
    noise = rng.uniform(0.97, 1.03, above.height)
    off = d.pick(rng, above.height, d.RATES["revenue_mismatch"])
    noise = (
        np.where(
            off,
            np.where(
                rng.random(above.height) < 0.5,
                rng.uniform(1.2, 1.5, above.height),
                rng.uniform(0.55, 0.8, above.height),
            ),
            noise,
        )
        * facts["sales_share"][ent["above_scale"].to_numpy()]
    )
    reported = np.full(ent.height, np.nan)
    reported[ent["above_scale"].to_numpy()] = above["revenue_wan"].to_numpy() * noise
    facts["stats_revenue_wan"] = reported  # what 统计 publishes (规上 only): the revenue the R&D share divides
    truth["tax_vs_stats_revenue"] = [{"uscc": u, "year": str(year)} for u in above["uscc"].filter(pl.Series(off))]
    df = pl.DataFrame(
        {
            "统一社会信用代码": above["uscc"],
            "单位详细名称": _registered_name(above, facts["former_name_in_use"][ent["above_scale"].to_numpy()]),
            "年份": [str(year)] * above.height,
            "工业增加值(万元)": money(above["value_added_wan"].to_numpy()),
            "营业收入(万元)": money(above["revenue_wan"].to_numpy() * noise),
            "平均从业人员(人)": above["employees"].cast(pl.String),
            "研发费用(万元)": money(above["rd_wan"].to_numpy()),
            "综合能源消费量(吨标准煤)": money(above["energy_tce"].to_numpy()),
        }
    )
    df = d.missing(df, "统一社会信用代码", rng)
    df = _former_name_without_code(df, facts, ent["above_scale"].to_numpy())
    return [Delivery("stats_annual", f"stats/annual/统计_规上工业企业主要指标_{year}.xlsx", df, "xlsx")]


def land_parcels(ent: pl.DataFrame, rng: np.random.Generator) -> list[Delivery]:
    n = ent.height
    parcels = 1 + (rng.random(n) < 0.25) + (rng.random(n) < 0.05)
    owner = np.repeat(np.arange(n), parcels)
    split = np.concatenate([rng.dirichlet(np.ones(k)) for k in parcels])
    mu = ent["land_mu"].to_numpy()[owner] * split
    sqm = rng.random(len(owner)) < d.UNIT_VARIANT_RATES["land_parcels"]
    acquired = rng.integers(dt.date(1995, 1, 1).toordinal(), dt.date(2023, 6, 30).toordinal(), len(owner))
    region = ent["region_code"].to_numpy()[owner]
    df = pl.DataFrame(
        {
            "宗地编号": [
                f"{r}{i:06d}GB{j:05d}"
                for i, (r, j) in enumerate(zip(region, rng.integers(0, 99999, len(owner)), strict=True))
            ],
            "权利人": ent["name"].to_numpy()[owner],
            "统一社会信用代码": ent["uscc"].to_numpy()[owner],
            "坐落": ent["address"].to_numpy()[owner],
            "面积": np.where(sqm, money(mu * 666.6667), money(mu, 4)),
            "面积单位": np.where(sqm, "平方米", "亩"),
            "土地用途": rng.choice(["工业用地", "工业用地", "工业用地", "仓储用地"], len(owner)),
            "取得日期": [dt.date.fromordinal(int(x)).isoformat() for x in acquired],
            d.marker("unit_variant"): sqm,
        }
    )
    df = d.nonstandard_dates(df, "取得日期", rng)
    empty = pl.DataFrame(
        {c: [] for c in df.columns if not c.startswith(d.MARK)},
        schema={c: pl.String for c in df.columns if not c.startswith(d.MARK)},
    )
    return [
        Delivery("land_parcels", f"land/parcels/自然资源_土地使用权_{YEAR}.csv", df, "csv", "gb18030"),
        Delivery("land_parcels", f"land/parcels/自然资源_土地使用权_{YEAR}_补充.csv", empty, "csv", "gb18030", "empty"),
    ]


def eco_emissions(ent: pl.DataFrame, rng: np.random.Generator, facts: dict) -> list[Delivery]:
    permitted = np.where(ent["above_scale"].to_numpy(), rng.random(ent.height) < 0.9, rng.random(ent.height) < 0.15)
    facts["emission_reported"] = permitted  # only permit holders file an execution report
    e = ent.filter(pl.Series(permitted))
    eq = e["emission_eq_t"].to_numpy()
    mix = rng.dirichlet([4, 1, 2, 3], e.height)
    df = pl.DataFrame(
        {
            "统一社会信用代码": e["uscc"],
            "单位名称": _registered_name(e, facts["former_name_in_use"][permitted]),
            "年份": [str(YEAR)] * e.height,
            "化学需氧量(吨)": money(eq * mix[:, 0], 4),
            "氨氮(吨)": money(eq * mix[:, 1], 4),
            "二氧化硫(吨)": money(eq * mix[:, 2], 4),
            "氮氧化物(吨)": money(eq * mix[:, 3], 4),
            "排污许可证编号": [
                f"{u}001{'V' if r < 0.5 else 'P'}" for u, r in zip(e["uscc"], rng.random(e.height), strict=True)
            ],
        }
    )
    df = d.missing(df, "统一社会信用代码", rng)
    df = _former_name_without_code(df, facts, permitted)
    return [Delivery("eco_emissions", f"eco/emissions/生态环境_排污许可执行报告_{YEAR}.csv", df, "csv", "utf-8-sig")]
