"""Entity resolution's matching on a small lake of known records: each method, what makes a match ambiguous,
and a steward's decision over both (the end-to-end resolution on the demo: test_modelling.py)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from lakehouse.lake import Lake
from privacy.audit import AuditLog
from quality import resolution

A, B, C, D = "91331003MA00000012", "91331003MA00000025", "91331003MA00000038", "91331003MA0000004B"
AT = dt.datetime(2024, 4, 1, tzinfo=dt.UTC)


def _by(dataset: str) -> resolution.Resolvable:
    return next(r for r in resolution.resolvables() if r.id == dataset)


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def _quarantine(lake: Lake, dataset: str, raw: list[dict], rules: list[str]) -> None:
    """Raw rows of ``dataset`` (file q.csv, rows 1…) and a finding per row and rule."""
    frame = pl.DataFrame(raw).with_columns(
        pl.lit("q.csv").alias("_source_file"), pl.int_range(1, len(raw) + 1, dtype=pl.Int64).alias("_row_number")
    )
    lake.overwrite("raw", dataset, frame.to_arrow())
    findings = pl.DataFrame(
        {
            "dataset": [dataset] * len(raw) * len(rules),
            "source_file": ["q.csv"] * len(raw) * len(rules),
            "row_number": [n for n in range(1, len(raw) + 1) for _ in rules],
            "rule_id": rules * len(raw),
            "action": ["quarantined"] * len(raw) * len(rules),
        }
    )
    lake.overwrite("quarantine", "findings", findings.to_arrow())


KNOWN = pl.DataFrame(
    {
        "uscc": [A, B, C, C],
        "name": [
            "台州盛凯塑业有限公司",
            "台州市黄岩区盛凯塑业有限公司",
            "台州市黄岩区明大模具有限公司",
            "台州明大模具（集团）有限公司",
        ],
        "address": ["浙江省台州市黄岩区东城街道劳动路1号", None, None, None],
        "source": ["amr_registration", "amr_registration", "amr_registration", "tax_monthly"],
        "former": [False] * 4,
    }
)


def known(names: pl.DataFrame) -> pl.DataFrame:
    """The names as ``resolution.known`` gives them: with the name's core and the code's body."""
    return names.with_columns(
        resolution.core_name(pl.col("name")).alias("core"), pl.col("uscc").str.slice(0, 17).alias("body")
    )


ACCOUNTS = pl.DataFrame({"dataset": ["power_monthly"], "column": ["account_no"], "value": ["3300000001"], "uscc": [D]})


def _matches(lake: Lake, dataset: str) -> dict[int, dict]:
    m, _ = resolution.match(lake, _by(dataset), known(KNOWN), ACCOUNTS, AT)
    return {r["row_number"]: r for r in m.iter_rows(named=True)}


def test_each_method_finds_its_enterprise_and_only_an_equal_alternative_makes_a_match_ambiguous(lake):
    _quarantine(
        lake,
        "tax_monthly",
        [
            {"uscc": "", "taxpayer_name": "台州盛凯塑业有限公司"},  # exact name; 台州市黄岩区… is another firm
            {"uscc": " ", "taxpayer_name": "台州 盛凯塑业有限公司\u200b"},  # the same name as delivered, spaced
            {"uscc": "", "taxpayer_name": "台州市明大模具（集团）有限公司"},  # only the core name is known
            {"uscc": "", "taxpayer_name": "台州从未见过模具有限公司"},
            {"uscc": A[:-1] + "9", "taxpayer_name": "台州盛凯塑业有限公司"},  # a check-digit typo
        ],
        ["uscc_required"],
    )
    m = _matches(lake, "tax_monthly")
    assert (m[1]["status"], m[1]["uscc"], m[1]["method"]) == ("matched", A, "name")
    assert B in m[1]["candidates"] and "弱匹配" in m[1]["note"]  # the namesake is listed, not decisive
    assert (m[2]["status"], m[2]["uscc"]) == ("matched", A)  # full-width, blanks, zero-width cleaned first
    assert (m[3]["status"], m[3]["uscc"], m[3]["method"], m[3]["confidence"]) == ("review", C, "name_core", 0.85)
    assert m[4]["status"] == "unmatched" and m[4]["uscc"] is None and m[4]["candidates"] is None
    assert (m[5]["status"], m[5]["uscc"], m[5]["method"]) == ("matched", A, "code_body")


def test_a_supply_account_identifies_its_firm_and_two_firms_of_one_name_wait_for_a_steward(lake):
    _quarantine(
        lake,
        "power_monthly",
        [
            {"uscc": "", "account_no": "3300000001", "account_name": "某户名"},
            {"uscc": "", "account_no": "3300000002", "account_name": "台州明大模具（集团）有限公司"},
        ],
        ["uscc_required"],
    )
    m = _matches(lake, "power_monthly")
    assert (m[1]["status"], m[1]["uscc"], m[1]["method"]) == ("matched", D, "entity_key")
    # the tax bureau knows a second firm by the very same name: no guess between two exact matches
    twin = pl.concat(
        [
            KNOWN,
            pl.DataFrame(
                {
                    "uscc": [A],
                    "name": ["台州明大模具（集团）有限公司"],
                    "address": [None],
                    "source": ["stats_annual"],
                    "former": [False],
                }
            ),
        ]
    )
    found, filled = resolution.match(lake, _by("power_monthly"), known(twin), ACCOUNTS, AT)
    second = found.filter(pl.col("row_number") == 2).row(0, named=True)
    assert second["status"] == "review" and "2 个候选企业" in second["note"]
    assert set(filled["_row_number"]) == {1}  # only the unambiguous record is filled in


def test_a_registration_without_its_name_is_known_by_its_code(lake):
    _quarantine(
        lake,
        "amr_registration",
        [{"uscc": C, "name": "", "address": ""}, {"uscc": D, "name": "", "address": None}],
        ["name_required"],
    )
    m = _matches(lake, "amr_registration")
    assert (m[1]["status"], m[1]["uscc"], m[1]["method"], m[1]["name"]) == (
        "matched",
        C,
        "name_by_code",
        "台州市黄岩区明大模具有限公司",
    )
    assert m[2]["status"] == "unmatched"  # a code nobody else states: no name to give it


def test_a_former_name_from_the_registration_identifies_the_renamed_firm_unless_another_firm_bears_it(lake):
    # the registration lists what each firm was called before (曾用名, several separated by ；), as delivered
    lake.overwrite(
        "std",
        "amr_registration",
        pl.DataFrame(
            {
                "uscc": [A, B],
                "name": ["台州盛凯塑业有限公司", "台州市黄岩区明大模具有限公司"],
                "former_names": ["台州旧凯塑业有限公司; 台州更早塑业有限公司", "台州盛凯塑业有限公司"],
                "address": [None, None],
            }
        ).to_arrow(),
    )
    names, keys = resolution.known(lake, [_by("amr_registration")])
    assert set(names.filter(pl.col("former")).select("uscc", "name").iter_rows()) == {
        (A, "台州旧凯塑业有限公司"),
        (A, "台州更早塑业有限公司"),
        (B, "台州盛凯塑业有限公司"),
    }
    _quarantine(
        lake,
        "stats_annual",
        [
            {"uscc": "", "name": "台州更早塑业有限公司"},  # 统计's register still lists the older name
            {"uscc": "", "name": "台州盛凯塑业有限公司"},  # A's name now, B's before: who filed it?
        ],
        ["uscc_required"],
    )
    found, filled = resolution.match(lake, _by("stats_annual"), names, keys, AT)
    m = {r["row_number"]: r for r in found.iter_rows(named=True)}
    assert (m[1]["status"], m[1]["uscc"], m[1]["method"], m[1]["confidence"]) == ("matched", A, "former_name", 0.95)
    assert m[1]["name"] == "台州盛凯塑业有限公司"  # known by its current name
    assert m[2]["status"] == "review" and A in m[2]["candidates"] and B in m[2]["candidates"]
    assert set(filled["_row_number"]) == {1}


def test_a_stewards_decision_overrides_the_matching_and_is_audited(lake, tmp_path):
    _quarantine(
        lake, "tax_monthly", [{"uscc": "", "taxpayer_name": "台州市明大模具（集团）有限公司"}], ["uscc_required"]
    )
    m, _ = resolution.match(lake, _by("tax_monthly"), known(KNOWN), ACCOUNTS, AT)
    lake.replace_where("ops", "entity_matches", m.to_arrow().cast(resolution.MATCH_SCHEMA), "dataset", "tax_monthly")
    audit = AuditLog(tmp_path / "audit.jsonl")
    resolution.decide(lake, audit, "steward:li", "tax_monthly", "q.csv", 1, "confirmed", B, "经税务部门核实")
    confirmed = _matches(lake, "tax_monthly")[1]
    assert (confirmed["status"], confirmed["uscc"], confirmed["method"], confirmed["note"]) == (
        "confirmed",
        B,
        "steward",
        "经税务部门核实",
    )
    resolution.decide(lake, audit, "steward:wang", "tax_monthly", "q.csv", 1, "rejected", None, "外地企业，非本区")
    assert _matches(lake, "tax_monthly")[1]["status"] == "rejected"
    assert [(e["action"], e["actor"]) for e in audit.entries()] == [
        ("entity.confirmed", "steward:li"),
        ("entity.rejected", "steward:wang"),
    ]


def test_a_resolved_registration_lends_its_names_and_former_names_to_the_other_datasets():
    registration = _by("amr_registration")
    names = known(KNOWN)
    resolved = pl.DataFrame(
        {
            "uscc": [D, None],
            "name": [None, "无代码企业有限公司"],  # a registration without its name keeps it empty
            "former_names": ["台州旧名模具有限公司；台州更旧模具有限公司", None],
            "address": [None, None],
        }
    )
    both = resolution.with_resolved_names(names, registration, resolved)
    added = both.join(names, on=["uscc", "name", "former"], how="anti")
    assert set(added.select("uscc", "name", "former").iter_rows()) == {
        (D, "台州旧名模具有限公司", True),
        (D, "台州更旧模具有限公司", True),
    }
    assert set(both.columns) == set(names.columns) and both.height == names.height + 2
    assert resolution.with_resolved_names(names, registration, None) is names


def test_the_digest_of_a_table_is_its_content_whatever_the_row_order():
    from quality.resolution import _print

    a = pl.DataFrame({"uscc": ["1", "2", None], "name": ["甲", "乙", "丙"]})
    assert _print(a) == _print(a.reverse()) == _print(a.select("name", "uscc"))
    assert _print(a) != _print(a.with_columns(pl.when(pl.col("name") == "乙").then(pl.lit("丁")).otherwise("name")))
    assert _print(a) != _print(a.head(2)) and _print(a) != _print(pl.concat([a, a.head(1)]))
    assert _print(None) == _print(a.clear()) == "0"
