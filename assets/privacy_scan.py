"""The privacy scan asset: what the scanner proposes for every raw column, beside what is declared.

Stewards read it in the UI (a table of disagreements in the asset's metadata, and a WARN check) and in
``catalogue/privacy_scan``; declarations stay theirs, in lakehouse/sources.yaml.
"""

import json

import dagster as dg
import polars as pl

from assets.collect import raw_key
from lakehouse.registry import Registry, registry
from orchestration.automation import follows_inputs
from orchestration.resources import BACKGROUND, LakeResource
from privacy.scan_registry import VERSIONS, scan_registry


def build(reg: Registry | None = None) -> dg.AssetsDefinition:
    reg = reg or registry()

    @dg.asset(
        key=["catalogue", "privacy_scan"],
        op_tags=BACKGROUND,
        deps=[raw_key(ds) for ds in reg.datasets],
        group_name="catalogue",
        description="个人信息扫描: the scanner's proposals (resident IDs with their check digit, mobiles, bank cards "
        "by Luhn, e-mails, USCCs, addresses, person names, personal information in free text) for every raw "
        "column, beside the declared classification, grade and role.",
        kinds={"delta", "polars"},
        owners=[reg.defaults.steward],
        tags={"zone": "catalogue"},
        check_specs=[
            dg.AssetCheckSpec(
                "declarations_agree",
                asset=["catalogue", "privacy_scan"],
                description="every column the scanner finds personal or sensitive is declared with that role "
                "and at least that grade",
            )
        ],
        automation_condition=follows_inputs(),
    )
    def privacy_scan(context: dg.AssetExecutionContext, lake: LakeResource):
        the_lake = lake.lake()
        # datasets whose raw did not change since the last scan keep their findings (only new deliveries
        # are read again: a month's filings do not make the warehouse re-read ten million telemetry rows)
        last = next(iter(the_lake.commits("catalogue", "privacy_scan", 1)), {})
        scanned = json.loads(last[VERSIONS]) if VERSIONS in last else None
        previous = the_lake.read("catalogue", "privacy_scan") if scanned is not None else None
        found, versions = scan_registry(reg, the_lake, previous, scanned)
        rescanned = sorted(d for d, v in versions.items() if (scanned or {}).get(d) != v)
        context.log.info(f"privacy scan: read {', '.join(rescanned) or 'nothing new'}; kept the other findings")
        version = the_lake.overwrite(
            "catalogue", "privacy_scan", found.to_arrow(), metadata={VERSIONS: json.dumps(versions, sort_keys=True)}
        )
        disagree = found.filter(~pl.col("agrees"))
        md = "\n".join(
            f"| {r['dataset_id']}.{r['column']} | {r['detected']} ({r['detected_by']}, {r['share']:.0%}) | "
            f"{r['proposed_role']} {r['proposed_grade']} | {r['declared_role']} {r['declared_grade']} |"
            for r in disagree.iter_rows(named=True)
        )
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": found.height,
                "personal_columns": found.filter(pl.col("proposed_role") == "direct").height,
                "disagreements": disagree.height,
                "delta_version": version,
                "datasets_rescanned": ", ".join(rescanned) or "none",
                "disagreement_table": dg.MetadataValue.md(
                    "| column | detected | proposed | declared |\n|---|---|---|---|\n" + md if md else "none"
                ),
            }
        )
        yield dg.AssetCheckResult(
            check_name="declarations_agree",
            passed=disagree.height == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"disagreements": disagree.height},
        )

    return privacy_scan
