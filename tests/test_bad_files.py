"""Every kind of bad delivery is refused whole with a clear reason, and the good file beside it lands."""

import io
import json

import polars as pl
import pytest

from assets.ingest.collector import Collector
from lakehouse.lake import Lake
from lakehouse.registry import registry

LAND = registry().dataset("land_parcels")
EQUIPMENT = registry().dataset("ent_equipment")
STATS = registry().dataset("stats_annual")
LAND_HEADER = ",".join(LAND.source_headers)
GOOD_LAND_ROW = "331003000001GB00001,台州市黄岩永兴模具有限公司,91331003MAEFPX141W,浙江省台州市黄岩区劳动路1号,12.5,亩,工业用地,2015-03-02"
GOOD_DEVICE = {
    "device_id": "DEV1",
    "uscc": "91331003MAEFPX141W",
    "device_name": "注塑机",
    "model": "HX-180",
    "rated_power_kw": 180.0,
    "commissioned_on": "2019-05-01",
}


def _csv(rows: list[str], encoding="gb18030", newline_at_end=True) -> bytes:
    text = "\n".join([LAND_HEADER, *rows]) + ("\n" if newline_at_end else "")
    return text.encode(encoding)


def _collect(tmp_path, dataset, files: dict[str, bytes]):
    folder = tmp_path / "landing" / dataset.landing
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    lake = Lake(str(tmp_path / "lake"))
    result = Collector(dataset, lake, tmp_path / "landing", tmp_path / "rejected", "b1").run()
    return lake, {o.file.rsplit("/", 1)[-1]: o for o in result.outcomes}


def _xlsx(headers, rows) -> bytes:
    buf = io.BytesIO()
    pl.DataFrame(
        [dict(zip(headers, r, strict=True)) for r in rows], schema={h: pl.String for h in headers}
    ).write_excel(buf)
    return buf.getvalue()


CSV_CASES = {
    "empty": (b"", "empty", "file", 0),
    "header_only": (_csv([]), "empty", "file", 0),
    "truncated": (_csv([GOOD_LAND_ROW, GOOD_LAND_ROW[:40]], newline_at_end=False), "truncated", "line 3", 2),
    "ragged_middle": (_csv([GOOD_LAND_ROW, "a,b,c", GOOD_LAND_ROW]), "malformed_rows", "line 3", 3),
    "missing_column": (
        _csv([GOOD_LAND_ROW]).replace("土地用途,".encode("gb18030"), b""),
        "missing_columns",
        "header",
        1,
    ),
    "extra_column": (
        (LAND_HEADER + ",备注\n" + GOOD_LAND_ROW + ",x\n").encode("gb18030"),
        "unexpected_columns",
        "header",
        1,
    ),
    "undecodable": (_csv([GOOD_LAND_ROW]) + b"\xff\xfe\xff", "encoding", "byte", None),
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_bad_csv_is_refused_whole_and_the_good_file_still_lands(tmp_path, case):
    data, code, where, rows = CSV_CASES[case]
    lake, out = _collect(tmp_path, LAND, {"bad.csv": data, "good.csv": _csv([GOOD_LAND_ROW] * 3)})
    bad, good = out["bad.csv"], out["good.csv"]
    assert bad.status == "rejected" and bad.rejection.code == code
    assert bad.rejection.position.startswith(where) and bad.rows_read == rows
    assert good.status == "landed" and good.rows_landed == 3
    assert lake.row_count("raw", "land_parcels") == 3  # nothing of the bad file is visible
    reason = json.loads((tmp_path / "rejected/land_parcels/b1/bad.csv.reason.json").read_text(encoding="utf-8"))
    assert reason["code"] == code and reason["file"].endswith("bad.csv")
    log = lake.read("ops", "collect_log").filter(pl.col("status") == "rejected")
    assert log["reason_en"].to_list() == [bad.rejection.reason_en]


def test_a_large_file_failing_at_its_end_leaves_no_partial_commit(tmp_path):
    # several Arrow blocks stream into the writer before the truncated last row is met
    rows = [GOOD_LAND_ROW] * 150_000 + [GOOD_LAND_ROW[:30]]
    lake, out = _collect(tmp_path, LAND, {"big.csv": _csv(rows, newline_at_end=False)})
    assert out["big.csv"].status == "rejected" and out["big.csv"].rejection.code == "truncated"
    assert out["big.csv"].rows_read == 150_001
    assert lake.row_count("raw", "land_parcels") == 0


def test_utf8_bom_and_gbk_files_decode_to_the_same_rows(tmp_path):
    lake, out = _collect(
        tmp_path,
        LAND,
        {"gbk.csv": _csv([GOOD_LAND_ROW], "gbk"), "bom.csv": _csv([GOOD_LAND_ROW.replace("12.5", "13")], "utf-8-sig")},
    )
    assert {o.encoding for o in out.values()} == {"gb18030-2022", "utf-8-sig"}
    holders = lake.read("raw", "land_parcels")["holder_name"].to_list()
    assert holders == ["台州市黄岩永兴模具有限公司"] * 2


def _jsonl(records, tail="") -> bytes:
    return ("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records) + tail).encode()


JSONL_CASES = {
    "truncated": (_jsonl([GOOD_DEVICE], '{"device_id": "DEV2", "uscc'), "truncated", "line 2", 2),
    "malformed_middle": (_jsonl([GOOD_DEVICE]) + b"{oops}\n" + _jsonl([GOOD_DEVICE]), "malformed_json", "line 2", 2),
    "unexpected_key": (_jsonl([GOOD_DEVICE, {**GOOD_DEVICE, "firmware": "1.2"}]), "unexpected_columns", "line 2", 2),
    "missing_key": (_jsonl([{k: v for k, v in GOOD_DEVICE.items() if k != "model"}]), "missing_columns", "file", 1),
    # a line that is valid JSON but not an object, or not JSON at all: the line, the reason, the rows read
    "array": (_jsonl([GOOD_DEVICE, GOOD_DEVICE]) + b'["DEV9", "x"]\n', "malformed_json", "line 3", 3),
    "scalar": (_jsonl([GOOD_DEVICE]) + b"42\n" + _jsonl([GOOD_DEVICE]), "malformed_json", "line 2", 2),
    "null": (_jsonl([GOOD_DEVICE]) + b"null\n", "malformed_json", "line 2", 2),
    "nan": (
        _jsonl([GOOD_DEVICE]) + _jsonl([GOOD_DEVICE]).replace(b'"DEV', b'NaN, "x": "DEV', 1),
        "malformed_json",
        "line 2",
        2,
    ),
    "infinity": (_jsonl([{**GOOD_DEVICE, "model": "M"}]).replace(b'"M"', b"Infinity"), "malformed_json", "line 1", 1),
}
REASON_SAID = {
    "array": "an array, not a JSON object",
    "scalar": "a number, not a JSON object",
    "null": "null, not a JSON object",
    "nan": "",
    "infinity": "Infinity is not a JSON value",
}


@pytest.mark.parametrize("case", sorted(JSONL_CASES))
def test_bad_json_lines_are_refused_whole(tmp_path, case):
    data, code, where, rows = JSONL_CASES[case]
    lake, out = _collect(tmp_path, EQUIPMENT, {"bad.jsonl": data, "good.jsonl": _jsonl([GOOD_DEVICE] * 2)})
    assert (out["bad.jsonl"].status, out["bad.jsonl"].rejection.code) == ("rejected", code)
    assert out["bad.jsonl"].rejection.position == where and out["bad.jsonl"].rows_read == rows
    assert (
        REASON_SAID.get(case, "") in out["bad.jsonl"].rejection.detail
        and "unknown" not in out["bad.jsonl"].rejection.detail
    )
    assert lake.row_count("raw", "ent_equipment") == 2


def test_a_json_lines_file_may_end_in_blank_lines_but_not_hold_one(tmp_path):
    lake, out = _collect(
        tmp_path,
        EQUIPMENT,
        {
            "end.jsonl": _jsonl([GOOD_DEVICE] * 2) + b"\n\n",
            "mid.jsonl": _jsonl([GOOD_DEVICE]) + b"\n" + _jsonl([GOOD_DEVICE]),
        },
    )
    assert (out["end.jsonl"].status, out["end.jsonl"].rows_landed) == ("landed", 2)
    assert (out["mid.jsonl"].status, out["mid.jsonl"].rejection.position) == ("rejected", "line 2")


def test_json_values_are_kept_as_text_with_their_value(tmp_path):
    records = [GOOD_DEVICE, {**GOOD_DEVICE, "rated_power_kw": "N/A"}, {**GOOD_DEVICE, "rated_power_kw": 7.25}]
    lake, _ = _collect(tmp_path, EQUIPMENT, {"d.jsonl": _jsonl(records)})
    # JSON numbers are values, not spellings: 180.0 may come back as '180'; strings come back verbatim
    kept = lake.read("raw", "ent_equipment")["rated_power_kw"].to_list()
    assert float(kept[0]) == 180.0 and kept[1:] == ["N/A", "7.25"]


def test_damaged_and_misshapen_workbooks_are_refused(tmp_path):
    headers = STATS.source_headers
    row = ["91331003MAEFPX141W", "甲公司", "2023", "1.0", "2.0", "10", "0.1", "3.0"]
    good = _xlsx(headers, [row])
    lake, out = _collect(
        tmp_path,
        STATS,
        {
            "good_2023.xlsx": good,
            "cut_2023.xlsx": good[: len(good) // 2],
            "drift_2023.xlsx": _xlsx([*headers[:-1], "能耗"], [row]),
        },
    )
    assert out["cut_2023.xlsx"].rejection.code == "unreadable"
    assert out["drift_2023.xlsx"].rejection.code == "unexpected_columns"
    assert out["drift_2023.xlsx"].rows_read == 1
    assert out["good_2023.xlsx"].rows_landed == 1
    assert lake.read("raw", "stats_annual")["_period"].to_list() == ["2023"]


def test_the_same_bad_file_dropped_again_is_refused_again_without_reading(tmp_path):
    bad = _csv([GOOD_LAND_ROW, "x,y"])
    _collect(tmp_path, LAND, {"bad.csv": bad})
    lake, out = _collect(tmp_path, LAND, {"bad_again.csv": bad})
    assert out["bad_again.csv"].rejection.code == "duplicate_of_rejected"


POWER = registry().dataset("power_monthly")
POWER_ROW = "3312345678,台州市黄岩永兴模具有限公司,91331003MAEFPX141W,2023-07,12345,kWh,10kV"


def test_a_renamed_column_with_a_configured_mapping_lands_under_its_registered_name(tmp_path):
    assert POWER.alias_map == {"用电量(千瓦时)": "用电量"}  # configured in lakehouse/sources.yaml
    header = ",".join(POWER.source_headers).replace("用电量,", "用电量(千瓦时),")
    lake, out = _collect(tmp_path, POWER, {"p_2023-07.csv": f"{header}\n{POWER_ROW}\n".encode("gb18030")})
    assert out["p_2023-07.csv"].status == "landed"
    assert lake.read("raw", "power_monthly")["consumption"].to_list() == ["12345"]


def test_drift_without_a_mapping_is_refused_and_names_the_columns(tmp_path):
    header = ",".join(POWER.source_headers).replace("用电量,", "用电量(千瓦时),") + ",抄表员"
    lake, out = _collect(tmp_path, POWER, {"p_2023-07.csv": f"{header}\n{POWER_ROW},张三\n".encode("gb18030")})
    r = out["p_2023-07.csv"].rejection
    assert r.code == "unexpected_columns" and "'抄表员' (column 8)" in r.detail and "用电量" not in r.detail
    assert lake.row_count("raw", "power_monthly") == 0


def _workbook(sheets: list[tuple[str, list[str], list[list[str]], bool]]) -> bytes:
    """An XLSX with the given sheets: (name, header, rows, hidden)."""
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    for name, header, rows, hidden in sheets:
        ws = wb.add_worksheet(name)
        for i, line in enumerate([header, *rows]):
            for j, value in enumerate(line):
                ws.write_string(i, j, value)
        if hidden:
            ws.hide()
    visible = next(i for i, s in enumerate(sheets) if not s[3])
    wb.worksheets()[visible].activate()
    wb.close()
    return buf.getvalue()


def test_the_data_sheet_is_the_only_visible_one_never_a_hidden_one(tmp_path):
    headers = STATS.source_headers
    new = ["91331003MAEFPX141W", "甲公司", "2023", "1.0", "2.0", "10", "0.1", "3.0"]
    stale = ["91331003MAEFPX141W", "甲公司", "2022", "9.0", "9.0", "99", "0.9", "9.0"]
    lake, out = _collect(
        tmp_path,
        STATS,
        {
            # a hidden, stale first sheet and the data on the second: the data lands
            "hidden_2023.xlsx": _workbook([("旧", headers, [stale], True), ("数据", headers, [new], False)]),
            # an empty default sheet beside the data is no candidate
            "blank_2024.xlsx": _workbook([("数据", headers, [new], False), ("Sheet2", [], [], False)]),
            # two visible sheets with content: which is the delivery is not ours to guess
            "two_2025.xlsx": _workbook([("上半年", headers, [new], False), ("下半年", headers, [stale], False)]),
        },
    )
    assert out["hidden_2023.xlsx"].status == "landed" and out["blank_2024.xlsx"].status == "landed"
    assert lake.read("raw", "stats_annual").filter(pl.col("_period") == "2023")["year"].to_list() == ["2023"]
    refused = out["two_2025.xlsx"]
    assert (refused.status, refused.rejection.code) == ("rejected", "sheets")
    assert "上半年" in refused.rejection.detail and "下半年" in refused.rejection.detail


def test_a_registered_sheet_is_read_by_name_and_its_absence_refused(tmp_path):
    headers = STATS.source_headers
    row = ["91331003MAEFPX141W", "甲公司", "2023", "1.0", "2.0", "10", "0.1", "3.0"]
    named = STATS.model_copy(update={"sheet": "规上工业"})
    lake, out = _collect(
        tmp_path,
        named,
        {
            "a_2023.xlsx": _workbook([("说明", ["说明"], [["填表说明"]], False), ("规上工业", headers, [row], False)]),
            "b_2024.xlsx": _workbook([("Sheet1", headers, [row], False)]),
        },
    )
    assert out["a_2023.xlsx"].status == "landed"
    assert (out["b_2024.xlsx"].status, out["b_2024.xlsx"].rejection.code) == ("rejected", "sheet_missing")
