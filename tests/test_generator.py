"""The synthetic sources: deterministic, consistent across departments, defects at the declared rates."""

import codecs
import hashlib
import json
import math
import unicodedata

import polars as pl
import pytest
from stdnum.cn import uscc

from sourcegen.generate import generate


def _hashes(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, generated):
    generate(tmp_path / "a", scale=1.0)
    generate(tmp_path / "b", scale=1.0, seed=7)
    assert _hashes(tmp_path / "a") == _hashes(generated)
    assert _hashes(tmp_path / "b") != _hashes(generated)


def test_manifest_describes_every_landing_file(generated, manifest):
    on_disk = {
        p.relative_to(generated / "landing").as_posix() for p in (generated / "landing").rglob("*") if p.is_file()
    }
    assert on_disk == {f["path"] for f in manifest["files"]}
    for f in manifest["files"]:
        data = (generated / "landing" / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
    damages = {f["damage"] for f in manifest["files"]}
    assert {"truncated", "schema_drift", "unreadable", "empty"} <= damages


def test_encodings_are_the_ones_departments_use(generated, manifest):
    for f in manifest["files"]:
        data = (generated / "landing" / f["path"]).read_bytes()
        if f["encoding"] == "gb18030" and data:
            with pytest.raises(UnicodeDecodeError):
                data.decode("utf-8")
            assert (
                "企业" in data.decode("gb18030") or "用电" in data.decode("gb18030") or "面积" in data.decode("gb18030")
            )
        if f["encoding"] == "utf-8-sig":
            assert data.startswith(codecs.BOM_UTF8)


@pytest.mark.parametrize(
    "key",
    [
        "amr_registration.invalid_uscc_check",
        "amr_registration.fullwidth_or_spaces",
        "amr_registration.nonstandard_date",
        "amr_registration.pii_in_remarks",
        "tax_monthly.exact_duplicate",
        "tax_monthly.missing_mandatory",
        "tax_monthly.late_correction",
        "tax_monthly.unit_variant",
        "power_monthly.unit_variant",
        "land_parcels.unit_variant",
    ],
)
def test_defect_rates_are_as_declared(manifest, key):
    rec = manifest["defects"][key]
    n, rate, count = rec["population"], rec["declared_rate"], rec["count"]
    expected = n * rate
    sigma = math.sqrt(n * rate * (1 - rate))
    # other defects claim some rows first, so a few percent fewer are eligible
    assert expected * 0.9 - 4 * sigma <= count <= expected + 4 * sigma, (key, count, expected)


def _rows(generated, manifest, key):
    """(file, row) → delivered record for every row the truth manifest lists under ``key``."""
    out = []
    by_file: dict[str, list[int]] = {}
    for path, row in manifest["defects"][key]["rows"]:
        by_file.setdefault(path, []).append(row)
    for path, rows in by_file.items():
        f = next(x for x in manifest["files"] if x["path"] == path)
        full = generated / "landing" / path
        df = (
            pl.read_csv(full.read_bytes().decode(f["encoding"]).encode(), infer_schema=False)
            if f["format"] == "csv"
            else pl.read_excel(full)
        )
        out += [df.row(r - 1, named=True) for r in rows]
    return out


def test_listed_defect_rows_really_carry_the_defect(generated, manifest):
    bad = _rows(generated, manifest, "amr_registration.invalid_uscc_check")
    assert bad and all(len(r["统一社会信用代码"]) == 18 and not uscc.is_valid(r["统一社会信用代码"]) for r in bad)
    odd = _rows(generated, manifest, "amr_registration.fullwidth_or_spaces")
    assert odd and all(
        unicodedata.normalize("NFKC", r["统一社会信用代码"]).strip().replace("\u200b", "").replace(" ", "")
        != r["统一社会信用代码"]
        for r in odd
    )
    missing = _rows(generated, manifest, "tax_monthly.missing_mandatory")
    assert missing and all(not (r["纳税人识别号"] or "").strip() for r in missing)
    pii = _rows(generated, manifest, "amr_registration.pii_in_remarks")
    labelled = {r["text"] for r in manifest["pii_remarks"]}
    assert pii and all(r["备注"] in labelled for r in pii)  # each one written with its spans labelled
    corrections = _rows(generated, manifest, "tax_monthly.late_correction")
    assert corrections and all(r["申报类型"] == "更正" for r in corrections)


def test_departments_describe_the_same_enterprises(generated):
    ent = pl.read_parquet(generated / "truth" / "enterprises.parquet")
    stats = pl.read_excel(generated / "landing" / "stats/annual/统计_规上工业企业主要指标_2023.xlsx")
    codes = set(stats["统一社会信用代码"].drop_nulls()) - {""}
    above = set(ent.filter(pl.col("above_scale"))["uscc"])
    assert codes <= above and len(codes) >= 0.95 * len(above)  # only 规上 firms report to statistics
    # value added ÷ land gives 亩均 figures in a realistic band around the 黄岩 benchmark
    per_mu = (ent["value_added_wan"] / ent["land_mu"]).median()
    assert 30 < per_mu < 500


def test_manifest_is_valid_json_with_row_counts(manifest):
    landed = [f for f in manifest["files"] if f["expected_status"] == "landed"]
    assert all(f["rows"] > 0 for f in landed)
    json.dumps(manifest)


def test_history_years_add_earlier_years_and_leave_the_year_as_it_was(tmp_path, generated):
    """The bench's 24 months and more: years before of the monthly filings and annual statistics, from the same
    firms (those established by then, somewhat smaller) and the same supply accounts; the year itself unchanged."""
    from sourcegen.generate import YEAR

    out = tmp_path / "h"
    generate(out, scale=1.0, history_years=2)  # the scale of `generated`
    before, after = _hashes(generated / "landing"), _hashes(out / "landing")
    assert {p: h for p, h in after.items() if p in before} == before  # the year's files: byte for byte
    earlier = sorted(set(after) - set(before))
    months = [f"{y}-{m:02d}" for y in (YEAR - 2, YEAR - 1) for m in range(1, 13)]
    assert earlier == sorted(
        [f"enterprise/production/企业填报_月度生产_{m}.xlsx" for m in months]
        + [f"power/monthly/电力_月度用电_{m}.csv" for m in months]
        + [f"stats/annual/统计_规上工业企业主要指标_{y}.xlsx" for y in (YEAR - 2, YEAR - 1)]
        + [f"tax/monthly/税务_月度申报_{m}.csv" for m in months]
    )
    firms = pl.read_parquet(out / "truth" / "enterprises.parquet")
    by_then = set(firms.filter(pl.col("established_on").dt.year() < YEAR - 1)["uscc"])
    later = set(firms["uscc"]) - by_then
    assert later  # firms established in the year before: they file from then on
    land = out / "landing"

    def tax(period):
        frame = pl.read_csv(land / f"tax/monthly/税务_月度申报_{period}.csv", infer_schema=False, encoding="utf-8-sig")
        return frame.with_columns(pl.col("纳税人识别号").str.strip_chars())

    def power(period):
        text = (land / f"power/monthly/电力_月度用电_{period}.csv").read_bytes().decode("gb18030")
        return pl.read_csv(text.encode(), infer_schema=False)

    then, now = tax(f"{YEAR - 2}-06"), tax(f"{YEAR}-06")
    assert not set(then["纳税人识别号"]) & later and set(now["纳税人识别号"]) & later  # no filing before a firm exists
    assert len(set(then["纳税人识别号"]) & by_then) > 0.9 * len(by_then)
    revenue = {
        p: t.filter(pl.col("金额单位") == "元")["营业收入"].cast(pl.Float64, strict=False).sum()
        for p, t in (("then", then), ("now", now))
    }
    assert revenue["then"] < revenue["now"]  # the firms grew
    accounts = {p: set(power(p)["用电户号"]) for p in (f"{YEAR - 2}-01", f"{YEAR}-01")}
    assert accounts[f"{YEAR - 2}-01"] < accounts[f"{YEAR}-01"]  # the same accounts, less those of later firms
    manifest = json.loads((out / "truth" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["history_years"] == 2 and {f["path"] for f in manifest["files"]} == set(after)
    assert all(f["damage"] is None for f in manifest["files"] if f["path"] in earlier)
