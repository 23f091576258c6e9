"""The standardisation library on its own: text, dates, units, identifiers."""

import datetime as dt

import polars as pl
import pytest
from stdnum.cn import uscc as stdnum_uscc

from quality import dates, identifiers, text, units
from sourcegen.codes import issue_usccs, make_ric, make_uscc


def _apply(expr, values, dtype=pl.String):
    return pl.DataFrame({"v": values}, schema={"v": dtype}).select(expr(pl.col("v"))).to_series().to_list()


def test_text_is_half_width_without_invisible_characters():
    got = _apply(text.clean_text, ["ＡＢＣ１２３", " a\u3000b ", "x\u200by", "\ufeff台州", "  ", None])
    assert got == ["ABC123", "a b", "xy", "台州", None, None]
    assert _apply(text.clean_code, [" 9133 1003\u200b "]) == ["91331003"]
    assert _apply(text.enterprise_name, ["台州 永兴(模具)有限公司 "]) == ["台州永兴（模具）有限公司"]


def test_cleaning_skips_only_the_passes_a_column_does_not_need():
    frame = pl.DataFrame(
        {
            "plain": ["DEV-0001", "DEV-0002", None],
            "spaced": ["DEV 01 ", "x", None],
            "hidden": ["a\x07b", "c", None],  # BEL: an ASCII control character, invisible
            "wide": ["ＤＥＶ\u3000０１", "DEV01", None],  # non-ASCII: NFKC, which makes the U+3000 a space
        }
    )
    needs = text.text_needs(frame, frame.columns)
    assert needs["plain"] == text.TextNeeds(nfkc=False, invisible=False, space=False)
    assert needs["spaced"] == text.TextNeeds(nfkc=False, invisible=False, space=True)
    assert needs["hidden"] == text.TextNeeds(nfkc=False, invisible=True, space=False)
    assert needs["wide"] == text.TextNeeds(nfkc=True, invisible=True, space=True)
    for c in frame.columns:  # the shortcut changes nothing
        full = frame.select(text.clean_text(pl.col(c)))
        assert frame.select(text.clean_text(pl.col(c), needs[c])).equals(full), c


@pytest.mark.parametrize(
    "raw",
    ["2023-05-01", "2023/5/1", "2023.5.1", "20230501", "2023年5月1日", "２０２３年５月１日", " 2023 年 5 月 1 日 "],
)
def test_every_date_format_departments_use(raw):
    assert _apply(dates.parse_date, [raw]) == [dt.date(2023, 5, 1)]


def test_impossible_or_foreign_dates_are_null():
    assert _apply(dates.parse_date, ["2023-02-30", "20231301", "May 1st", "", None]) == [None] * 5


@pytest.mark.parametrize("raw", ["2023-05", "2023/5", "2023年5月", "202305", "2023.5"])
def test_months(raw):
    assert _apply(dates.parse_month, [raw]) == ["2023-05"]


def test_months_out_of_range_are_null():
    assert _apply(dates.parse_month, ["2023-13", "2023-00", "23-5"]) == [None, None, None]


def test_units_convert_to_one_canonical_unit_per_measure():
    df = pl.DataFrame({"v": [1.5, 2.0, 3.0, 1.0], "u": ["万元", "元", "亩", "MWh"]})
    money = df.select(pl.col("v") * units.factor_of(pl.col("u"), "money")).to_series().to_list()
    assert money == [15000.0, 2.0, None, None]  # an area or energy unit is no money unit
    assert df.select(pl.col("v") * units.factor_of(pl.col("u"), "area")).to_series()[2] == pytest.approx(2000.0)
    assert units.canonical("万元") == "元" and units.canonical("MWh") == "kWh" and units.canonical("亩") == "m²"


def test_uscc_validation_agrees_with_stdnum_and_explains_failures():
    import numpy as np

    rng = np.random.default_rng(9)
    valid = issue_usccs(rng, ["331003", "331002"] * 100)
    broken = [c[:-1] + ("0" if c[-1] != "0" else "1") for c in valid[:50]]
    got = _apply(identifiers.uscc_problem, valid + broken)
    assert got[:200] == [None] * 200 and all(stdnum_uscc.is_valid(c) for c in valid)
    assert got[200:] == ["uscc_check"] * 50 and not any(stdnum_uscc.is_valid(c) for c in broken)


def test_uscc_with_a_letter_authority_code_is_valid_though_stdnum_refuses_it():
    code = make_uscc("Y", "1", "331003", "MA2AKHFG")
    assert not stdnum_uscc.is_valid(code)  # the python-stdnum limitation (ARCHITECTURE §6)
    assert _apply(identifiers.uscc_problem, [code]) == [None]


def test_uscc_failure_reasons():
    good = make_uscc("9", "1", "331003", "MA2AKHFG")
    wrong_org = good[:16] + ("1" if good[16] != "1" else "2") + good[17]
    cases = {
        "913310": "uscc_length",
        good[:-1] + "I": "uscc_alphabet",
        "94" + good[2:]: "uscc_authority_category",
        good[:2] + "999999" + good[8:]: "uscc_region",
        wrong_org: "uscc_org_check",
    }
    assert _apply(identifiers.uscc_problem, list(cases)) == list(cases.values())


def test_resident_ids_via_stdnum_with_its_key_error_wrapped():
    bad_birth = make_ric("110105", "19491331", 2)  # right check digit, 31 Thirteenth
    half_known_area = make_ric("620201", "19900101", 1)  # python-stdnum raises KeyError here (ARCHITECTURE §6)
    got = _apply(
        identifiers.ric_problem,
        ["11010519491231002X", "110105194912310021", bad_birth, "1101051949", half_known_area, None],
    )
    assert got == [None, "ric_check", "ric_birth_date_or_area", "ric_length", "ric_area_unknown", None]


def _stdnum_reason(number: str) -> str | None:
    """python-stdnum, row by row: the reference the vectorised check must agree with."""
    from stdnum import exceptions as e
    from stdnum.cn import ric

    try:
        ric.validate(number)
    except e.InvalidLength:
        return "ric_length"
    except e.InvalidFormat:
        return "ric_format"
    except e.InvalidChecksum:
        return "ric_check"
    except e.InvalidComponent:
        return "ric_birth_date_or_area"
    except KeyError:
        return "ric_area_unknown"
    return None


def test_vectorised_resident_id_check_agrees_with_stdnum_row_by_row():
    import random

    rng = random.Random(11643)
    areas = ["110105", "332603", "331003", "332722", "620201", "999999", "331083", "330000"]
    numbers = []
    for _ in range(3000):
        born = f"{rng.randint(1930, 2010)}{rng.randint(1, 13):02d}{rng.randint(1, 31):02d}"
        good = make_ric(rng.choice(areas), born, rng.randint(0, 999))
        match rng.randint(0, 5):
            case 0:
                good = good[:17] + rng.choice("0123456789XY")  # any check character
            case 1:
                good = good[: rng.randint(1, 17)]
            case 2:
                i = rng.randint(0, 16)
                good = good[:i] + "A" + good[i + 1 :]
        numbers.append(good)
    got = _apply(identifiers.ric_problem, numbers)
    expected = [_stdnum_reason(n) for n in numbers]
    assert got == expected
    assert {None, "ric_check", "ric_length", "ric_format", "ric_birth_date_or_area", "ric_area_unknown"} <= set(got)


def test_region_codes_are_year_versioned():
    assert "331003" in identifiers.region_codes(2023) and "331003" not in identifiers.region_codes(1990)
    assert "332603" in identifiers.region_codes(1990) and "332603" not in identifiers.region_codes(2023)
    assert "331021" in identifiers.region_codes(2000) and "331083" in identifiers.region_codes(2023)


def test_mobiles():
    assert _apply(identifiers.mobile_problem, ["13812345678", "+8613812345678", "12812345678", "1381234567"]) == [
        None,
        None,
        "mobile",
        "mobile",
    ]
