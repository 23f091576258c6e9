"""Governance outputs across datasets: reconciliation (对账), problem lists (问题清单), department scores."""

import dagster as dg
import polars as pl

from assets.clean import std_key
from assets.own_tables import own_table_reports
from lakehouse.registry import Registry, registry
from lakehouse.tables import PROBLEMS, SCORES
from orchestration.automation import follows_inputs
from orchestration.resources import BACKGROUND, LakeResource
from quality import problem_lists as problem_lists_engine
from quality import reconcile
from quality.scores import DIMENSIONS

RECON_KEY = dg.AssetKey(["quality", "reconciliation"])
PROBLEM_LISTS_KEY = dg.AssetKey(["quality", "problem_lists"])


@dg.asset(
    key=RECON_KEY,
    op_tags=BACKGROUND,
    deps=[std_key(d) for d in ("tax_monthly", "stats_annual", "power_monthly", "ent_production")],
    group_name="quality",
    kinds={"polars", "delta"},
    owners=[registry().defaults.steward],
    tags={"zone": "quality"},
    automation_condition=follows_inputs(),
    check_specs=[
        dg.AssetCheckSpec(cid, asset=RECON_KEY, description=spec["name_zh"]) for cid, spec in reconcile.config().items()
    ],
)
def reconciliation(context: dg.AssetExecutionContext, lake: LakeResource):
    """对账：同一事实在两个部门的数据之间比对（税务与统计的年度营业收入；电力抄表与企业填报的月度用电量），
    超出容差的差异同时标记给两个部门。Cross-source reconciliation with configured tolerances
    (`quality/reconcile.yaml`); mismatches go to both departments' problem lists."""
    result, version = reconcile.reconcile_lake(lake.lake())
    counts = result.group_by("check_id", "status").len().sort("check_id", "status")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.height,
            "delta_version": version,
            "by_status": dg.MetadataValue.md("\n".join(f"- {c} · {s}: {n}" for c, s, n in counts.iter_rows())),
        }
    )
    for cid in reconcile.config():
        mism = result.filter((pl.col("check_id") == cid) & (pl.col("status") == "mismatch"))
        yield dg.AssetCheckResult(
            check_name=cid,
            passed=mism.height == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "mismatches": mism.height,
                "compared": result.filter(pl.col("check_id") == cid).height,
                "sample": dg.MetadataValue.md(
                    "\n".join(
                        f"- {r['uscc']} {r['period']}: {r['left_value']:.0f} vs {r['right_value']:.0f}"
                        for r in mism.head(5).iter_rows(named=True)
                    )
                    or "none"
                ),
            },
        )


def _problem_lists_asset(reg: Registry) -> dg.AssetsDefinition:
    @dg.asset(
        key=PROBLEM_LISTS_KEY,
        op_tags=BACKGROUND,
        deps=[*(std_key(ds.id) for ds in reg.datasets), RECON_KEY],
        group_name="quality",
        kinds={"polars", "delta", "xlsx"},
        owners=[reg.defaults.steward],
        tags={"zone": "quality"},
        automation_condition=follows_inputs(),
    )
    def problem_lists(context: dg.AssetExecutionContext, lake: LakeResource):
        """问题清单：按数源单位导出需退回整改或核实的问题（XLSX与CSV），并记录后续交付是否已整改。
        Problem lists per source department (XLSX and CSV under `quarantine/problem_lists/<department>/`),
        a ledger `quarantine/problems` of every problem raised and whether a later delivery fixed it, and
        GB/T 36344 scores per department."""
        result = problem_lists_engine.build(lake.lake(), reg)
        lines = ["| 数源单位 department | rejected | verify | reconcile | open | fixed |", "|---|---|---|---|---|---|"]
        for d in result.lists:
            h, st = d.by_handling, d.by_status
            lines.append(
                f"| {d.name_zh} | {h.get('退回整改 rejected', 0)} | {h.get('请核实 verify', 0)} | "
                f"{h.get('对账核实 reconcile', 0)} | {st.get('open', 0)} | {st.get('fixed', 0)} |"
            )
        ledger, dept_scores = result.ledger, result.department_scores
        yield from own_table_reports(
            {SCORES.label: result.scores_version, PROBLEMS.label: result.ledger_version},
            {SCORES.label: dept_scores.height, PROBLEMS.label: ledger.height},
        )
        yield dg.MaterializeResult(
            metadata={
                "problems": dg.MetadataValue.md("\n".join(lines)),
                "problems_open": ledger.filter(pl.col("status") == "open").height,
                "problems_fixed": ledger.filter(pl.col("status") == "fixed").height,
                "exports": dg.MetadataValue.path(result.export_root),
                **{
                    f"score/{r['subject']}": dg.FloatMetadataValue(r["overall"])
                    for r in dept_scores.iter_rows(named=True)
                },
                "department_scores": dg.MetadataValue.md(
                    "\n".join(
                        [f"| department | {' | '.join(DIMENSIONS)} | overall |", "|---" * (len(DIMENSIONS) + 2) + "|"]
                        + [
                            f"| {r['subject']} | {' | '.join(str(r[d]) for d in DIMENSIONS)} | {r['overall']} |"
                            for r in dept_scores.iter_rows(named=True)
                        ]
                    )
                ),
            }
        )

    return problem_lists


def build(reg: Registry | None = None) -> list[dg.AssetsDefinition]:
    return [reconciliation, _problem_lists_asset(reg or registry())]
