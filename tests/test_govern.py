"""Reconciliation flags the injected inconsistencies; problem lists hold exactly the quarantined rows;
a later delivery that fixes a problem is recorded."""

import dagster as dg
import polars as pl
import pytest
from conftest import is_published

import assets.defs
from lakehouse.lake import Lake
from lakehouse.registry import registry
from orchestration import runs
from orchestration.resources import resources
from orchestration.settings import settings

pytestmark = pytest.mark.integration  # Dagster runs, dbt, servers: make test, not make test-fast

ALL = [a for a in assets.defs.defs.assets if isinstance(a, dg.AssetsDefinition) and not is_published(a)]


@pytest.fixture(scope="module")
def governed(generated, tmp_path_factory):
    import shutil

    work = tmp_path_factory.mktemp("govern")
    shutil.copytree(generated / "landing", work / "landing")
    s = settings({"SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(work)})
    instance = dg.DagsterInstance.ephemeral()
    assert runs.materialize(ALL, resources=resources(s), instance=instance).success
    return s, instance, Lake(s.lake_root), work


@pytest.mark.parametrize("check_id", ["tax_vs_stats_revenue", "power_vs_production_electricity"])
def test_reconciliation_flags_exactly_the_injected_inconsistencies(governed, manifest, check_id):
    _, _, lake, _ = governed
    recon = lake.read("quality", "reconciliation").filter(pl.col("check_id") == check_id)
    compared = {(u, p) for u, p, st in recon.select("uscc", "period", "status").iter_rows() if st != "incomplete"}
    injected = {(x["uscc"], x.get("period") or x["year"]) for x in manifest["inconsistencies"][check_id]}
    flagged = set(recon.filter(pl.col("status") == "mismatch").select("uscc", "period").iter_rows())
    assert flagged == injected & compared  # precision and recall on everything that could be compared
    assert flagged
    # what was injected but not flagged could not be compared: a period is incomplete or one side is missing
    incomplete = set(recon.filter(pl.col("status") == "incomplete").select("uscc", "period").iter_rows())
    assert all(x in incomplete or x not in set(recon.select("uscc", "period").iter_rows()) for x in injected - flagged)


def test_problem_lists_hold_exactly_the_quarantined_rows(governed):
    s, _, lake, _ = governed
    findings = lake.read("quarantine", "findings")
    root = s.data_dir / "lake" / "quarantine" / "problem_lists"
    for dept, info in registry().departments.items():
        sheet = pl.read_excel(root / dept / f"问题清单_{info.name_zh}.xlsx")
        csv = pl.read_csv(root / dept / f"问题清单_{info.name_zh}.csv", infer_schema=False)
        assert csv.height == sheet.height
        listed = {
            (d, f, int(r), rule)
            for d, f, r, rule, h in sheet.select("数据集", "来源文件", "行号", "规则", "处理").iter_rows()
            if h.startswith("退回")
        }
        expected = set(
            findings.filter((pl.col("department") == dept) & (pl.col("action") == "quarantined"))
            .select("dataset", "source_file", "row_number", "rule_id")
            .iter_rows()
        )
        assert listed == expected, dept
    recon_rows = pl.read_excel(root / "stats" / f"问题清单_{registry().departments['stats'].name_zh}.xlsx").filter(
        pl.col("处理").str.starts_with("对账")
    )
    assert recon_rows.height > 0  # mismatches go to both departments
    tax_sheet = pl.read_excel(root / "tax" / f"问题清单_{registry().departments['tax'].name_zh}.xlsx")
    assert set(recon_rows["业务主键"]) <= set(tax_sheet["业务主键"])


def test_a_later_delivery_that_fixes_a_problem_is_recorded(governed):
    s, instance, lake, work = governed
    problems = lake.read("quarantine", "problems")
    target = problems.filter((pl.col("rule_id") == "name_required") & (pl.col("status") == "open")).row(0, named=True)
    uscc = target["record_key"].removeprefix("uscc=")
    reg = registry().dataset("amr_registration")
    raw = lake.read("raw", "amr_registration").filter(pl.col("uscc").str.strip_chars() == uscc).row(0, named=True)
    fixed_row = {**{c.name: raw[c.name] for c in reg.columns}, "name": "台州市黄岩补正模具有限公司"}
    line = ",".join((fixed_row[c.name] or "").replace(",", " ") for c in reg.columns)
    (work / "landing" / reg.landing / "市场监管_企业登记信息_补正.csv").write_bytes(
        (",".join(reg.source_headers) + "\n" + line + "\n").encode("gb18030")
    )
    assert runs.materialize(ALL, resources=resources(s), instance=instance).success
    after = lake.read("quarantine", "problems").filter(pl.col("problem_id") == target["problem_id"]).row(0, named=True)
    assert after["status"] == "fixed" and after["fixed_by"].endswith("市场监管_企业登记信息_补正.csv")
    # with the firm now registered, its 'not found in the registration' flags elsewhere resolve too — and nothing else
    newly_fixed = (
        lake.read("quarantine", "problems")
        .filter(pl.col("status") == "fixed")
        .join(problems.filter(pl.col("status") == "open").select("problem_id"), on="problem_id")
    )
    others = newly_fixed.filter(pl.col("problem_id") != target["problem_id"])
    assert others.height > 0 and set(others["rule_id"]) == {"uscc_registered"}
    assert set(others["value"].str.strip_chars()) == {uscc} and set(others["fixed_by"]) == {"no longer found"}
