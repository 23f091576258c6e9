"""Clean assets (治理): raw → std for every registered dataset, with the rule book as asset checks.

The std build itself (write-audit-publish, quarantine, scores) is ``quality.standardise``; an asset here
checks the dataset is classified, hands the engine the std zone's privacy policy, and reports the outcome
as checks and metadata.
"""

import dagster as dg
import polars as pl
from pydantic import Field

from assets.collect import asset_tags, catalogue_line, column_schema, raw_key
from assets.own_tables import own_table_reports
from lakehouse.provenance import PROVENANCE
from lakehouse.registry import Dataset, Registry, registry
from lakehouse.tables import DUPLICATES, FINDINGS, SCORES, STD_PARTITIONS
from orchestration import partitions
from orchestration.automation import follows_inputs
from orchestration.lineage import declare
from orchestration.metadata import console_link, transformations_table
from orchestration.resources import LakeResource, PrivacyResource
from privacy import policy
from privacy.access import record_policy
from privacy.audit import default_actor
from privacy.grading import unclassified
from quality.conform import Conformed
from quality.gate import STD_TYPES
from quality.rulebook import RuleSet, rules_for
from quality.scores import overall
from quality.standardise import standardise
from quality.units import canonical


class StdConfig(dg.Config):
    """标准化选项 / Standardisation options. By default a periodic dataset rebuilds the periods the run names
    (and any other period delivered since the last build); a dataset without periods rebuilds when raw
    changed."""

    full: bool = Field(
        default=False,
        description="全量重建 rebuild every period (after a change of the standardisation code itself)",
    )


def audit_key_use(
    context: dg.AssetExecutionContext,
    privacy: PrivacyResource,
    ring,
    ds: Dataset,
    table: str,
    version: int,
    rows: int,
    purpose: str,
) -> None:
    """The privileged log's record of a step pseudonymising ``ds``'s identifiers into ``table`` with the key ring."""
    privacy.audit().append(
        "key.use",
        actor=f"dagster:{context.run.run_id} ({default_actor()})",
        purpose=purpose,
        dataset=table,
        delta_version=version,
        key_version=ring.current,
        columns=sorted(c for c, w in policy.std_transforms(ds).items() if w == "pseudonymise"),
        rows=rows,
        run_id=context.run.run_id,
    )


def std_key(dataset_id: str) -> dg.AssetKey:
    return dg.AssetKey(["std", dataset_id])


def _std_schema(reg: Registry, ds: Dataset) -> dg.TableSchema:
    """The std column schema, with the units and the privacy tags of the raw one (classification, grade,
    role, and what the std zone did: pseudonymise or redact)."""
    tagged = {c.name: c.tags for c in column_schema(reg, ds, "std").columns}
    cols = []
    for c in ds.columns:
        unit = canonical(c.unit) if c.unit else (f"canonical {c.measure} unit" if c.measure else None)
        desc = c.description + (f" · 单位 {unit}" if unit else "")
        cols.append(dg.TableColumn(c.name, str(STD_TYPES[c.type]), description=desc, tags=tagged.get(c.name)))
    cols += [dg.TableColumn(f.name, str(f.type), description="provenance (from raw)") for f in PROVENANCE]
    return dg.TableSchema(columns=cols)


def _lineage(ds: Dataset) -> tuple[dg.TableColumnLineage, dict]:
    names = [c.name for c in ds.columns] + [f.name for f in PROVENANCE]
    how = {c.name: ("DIRECT", "TRANSFORMATION", f"standardised as {c.type}") for c in ds.columns}
    for column, what in policy.std_transforms(ds).items():
        how[column] = (
            ("DIRECT", "TRANSFORMATION", f"keyed HMAC-SHA-256 pseudonym ({policy.pseudonym_domain(column)})", True)
            if what == "pseudonymise"
            else ("DIRECT", "TRANSFORMATION", "personal information in the text redacted", True)
        )
    how.update({f.name: ("DIRECT", "IDENTITY", "provenance carried from raw") for f in PROVENANCE})
    return declare.by_name(raw_key(ds), names, names), declare.transformations(how)


def _sample(result: Conformed, rule_id: str) -> str:
    rows = result.findings.filter(pl.col("rule_id") == rule_id).head(5)
    return "\n".join(f"- {r['source_file']} row {r['row_number']}: {r['value']!r}" for r in rows.iter_rows(named=True))


def _check_results(
    rules: RuleSet, result: Conformed, whole: Conformed | None = None, raw_rows: int | None = None
) -> list[dg.AssetCheckResult]:
    """The rule checks on the whole dataset (``whole``: the totals after the build), the batch rules and
    conservation on the rows this build conformed — and the dataset's totals against the raw table."""
    whole = whole or result
    out = []
    for r in rules.rules:
        n = whole.rule_failures.get(r.id, 0)
        out.append(
            dg.AssetCheckResult(
                check_name=r.id,
                passed=n == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "failures": n,
                    "action": "quarantined" if r.severity == "ERROR" else "flagged",
                    "dimension": r.dimension,
                    "sample": dg.MetadataValue.md(_sample(result, r.id) or "none"),
                },
            )
        )
    failed = {g.rule_id: g for g in result.gate}
    for b in rules.batch:
        g = failed.get(b.id)
        out.append(
            dg.AssetCheckResult(
                check_name=b.id,
                passed=g is None,
                severity=dg.AssetCheckSeverity.ERROR if b.severity == "ERROR" else dg.AssetCheckSeverity.WARN,
                metadata={
                    "failures": g.count if g else 0,
                    "sample": dg.MetadataValue.md("\n".join(f"- {s}" for s in g.sample) if g else "none"),
                },
            )
        )
    out.append(
        dg.AssetCheckResult(
            check_name="conservation",
            passed=result.conserved and (raw_rows is None or whole.rows_in == raw_rows),
            metadata={
                "rows_in": result.rows_in,
                "rows_out": result.rows_out,
                "quarantined": result.quarantined,
                "exact_duplicates": result.exact_duplicates,
                "key_duplicates_merged": result.key_duplicates,
                "dataset_rows_in": whole.rows_in,
                "raw_rows": raw_rows if raw_rows is not None else 0,
            },
        )
    )
    return out


def _beyond(lake, ds: Dataset, pdef, rebuilt: list[str] | None, ran: set[str]) -> list[str]:
    """The partitions a build rebuilt besides those its run named: periods delivered since the last build,
    or every period the table holds when it was rebuilt whole."""
    if rebuilt is None:
        stats = lake.read(STD_PARTITIONS.zone, STD_PARTITIONS.name, columns=["dataset", "partition"])
        rebuilt = (
            stats.filter(pl.col("dataset") == ds.id)["partition"].unique().drop_nulls().to_list()
            if stats is not None
            else []
        )
    inside, _ = partitions.valid(pdef, rebuilt)
    return [p for p in inside if p not in ran]


def _std_asset(reg: Registry, ds: Dataset) -> dg.AssetsDefinition:
    rules = rules_for(ds.id)
    key = std_key(ds.id)
    pdef = partitions.for_dataset(ds, reg)
    lineage, transformations = _lineage(ds)
    specs = [
        dg.AssetCheckSpec(
            r.id,
            asset=key,
            description=f"{r.zh} / {r.en} — {r.severity}: rows "
            f"{'quarantined' if r.severity == 'ERROR' else 'flagged'} ({r.dimension})",
        )
        for r in rules.rules
    ]
    specs += [
        dg.AssetCheckSpec(
            b.id, asset=key, blocking=b.severity == "ERROR", description=f"{b.zh} / {b.en} — batch rule, {b.severity}"
        )
        for b in rules.batch
    ]
    specs.append(
        dg.AssetCheckSpec(
            "classified",
            asset=key,
            blocking=True,
            description="every column classified and graded (分类分级) before the dataset leaves raw",
        )
    )
    specs.append(
        dg.AssetCheckSpec(
            "conservation",
            asset=key,
            blocking=True,
            description="rows in = rows in std + rows quarantined + duplicates merged",
        )
    )

    @dg.asset(
        key=key,
        deps=[raw_key(ds), *(std_key(t) for t in sorted(rules.references))],
        description=f"**{ds.name_zh}** ({ds.name_en}) — 标准库 std zone.\n\n{catalogue_line(reg, ds)}\n\n"
        "Standardised (half-width text, ISO "
        f"dates, canonical units), de-duplicated (exact; then by {', '.join(rules.key)} with the latest delivery "
        "winning) and validated against the rule book "
        f"`quality/rules/{ds.id}.yaml`. Rejected rows are in `quarantine/findings` with rule and reason."
        + (
            f"\n\nPartitioned by {ds.period.granularity} (分区): a build rebuilds the periods it is run for (and any "
            "other period rows were delivered for since the last build); the rest stay as they are."
            if pdef is not None
            else ""
        ),
        group_name="std",
        partitions_def=pdef,
        # a range of periods is one build (one predicate overwrite), not one run per period
        backfill_policy=dg.BackfillPolicy.single_run() if pdef is not None else None,
        kinds={"polars", "delta", "pandera"},
        owners=[reg.owner_of(ds), reg.defaults.steward],
        tags={**asset_tags(reg, ds, "std")},
        automation_condition=follows_inputs(partitioned=pdef is not None),
        metadata={
            "dagster/column_schema": _std_schema(reg, ds),
            "dagster/table_name": f"std.{ds.id}",
            "rule_book": f"quality/rules/{ds.id}.yaml",
            "steward_console": console_link("std", ds.id),
        },
        check_specs=specs,
    )
    def std(context: dg.AssetExecutionContext, config: StdConfig, lake: LakeResource, privacy: PrivacyResource):
        missing = unclassified(ds)
        if missing:
            yield dg.AssetCheckResult(
                check_name="classified", passed=False, metadata={"unclassified": ", ".join(missing)}
            )
            raise dg.Failure(
                description=f"std/{ds.id}: columns {missing} are not classified (分类分级). The dataset stays in raw "
                f"until a steward sets classification, grade and role for them in lakehouse/sources.yaml; the "
                "privacy_scan asset proposes values."
            )
        yield dg.AssetCheckResult(check_name="classified", passed=True)
        record_policy(privacy.audit())
        ring = privacy.key_ring() if policy.std_transforms(ds) else None
        the_lake = lake.lake()
        outcome = standardise(
            the_lake,
            ds,
            rules,
            (lambda frame: policy.apply_std(frame, ds, ring)) if ring is not None else None,
            mask=lambda findings: policy.mask_findings(findings, ds),
            transform_version=f"key@{ring.current}" if ring is not None else "",
            full=config.full,
            periods=list(context.partition_keys) if pdef is not None else None,
        )
        result, version = outcome.result, outcome.version
        for build, written in outcome.recovered.items():
            context.log.warning(
                f"std/{ds.id}: build {build} had committed std but not its quarantine rows (a run died between "
                f"the writes); written now from its staging: {written}"
            )
        if ring is not None and version is not None and outcome.partitions != []:
            audit_key_use(context, privacy, ring, ds, f"std.{ds.id}", version, result.rows_out, "pseudonymise std")
        checks = _check_results(rules, result, outcome.whole, the_lake.row_count("raw", ds.id))
        if outcome.withheld:
            yield from checks
            raise dg.Failure(
                description=f"std/{ds.id}: batch not written — {outcome.reasons()}. The std table stays at "
                "its previous version and downstream does not run."
            )
        whole = outcome.whole or result
        if outcome.partitions == []:
            # nothing new: std stays at its version (a materialisation all the same — a step that produced
            # nothing would make Dagster skip the steps after it in the same run)
            context.log.info(f"std/{ds.id}: {outcome.plan}; std stays at version {version}")
            yield dg.MaterializeResult(
                data_version=dg.DataVersion(str(version)),
                metadata={
                    "dagster/row_count": whole.rows_out,
                    "delta_version": version,
                    "unchanged": True,
                    "rebuild_reason": outcome.plan,
                    "rows_rebuilt": 0,
                },
            )
            yield from checks
            return
        rebuilt = "all periods" if outcome.partitions is None else ", ".join(outcome.partitions) or "nothing"
        if pdef is not None:  # periods rebuilt beyond the run's own: each reported as materialised too
            for p in _beyond(the_lake, ds, pdef, outcome.partitions, set(context.partition_keys)):
                yield dg.AssetMaterialization(
                    asset_key=key,
                    partition=p,
                    tags={"dagster/data_version": str(version)},
                    metadata={"delta_version": version, "rebuild_reason": outcome.plan},
                )
        context.log.info(
            f"std/{ds.id}: rebuilt {rebuilt} ({outcome.plan}): {result.rows_in} in → {result.rows_out} std, "
            f"{result.quarantined} quarantined, {result.exact_duplicates + result.key_duplicates} duplicates merged"
        )
        scores = outcome.scores
        yield from own_table_reports(
            outcome.side_versions,
            dataset=ds.id,
            rows={
                FINDINGS.label: result.findings.height,
                DUPLICATES.label: result.duplicates.height if result.duplicates is not None else 0,
                SCORES.label: 1,
            },
        )
        yield dg.MaterializeResult(
            data_version=dg.DataVersion(str(version)),
            metadata={
                **{f"score/{d}": dg.FloatMetadataValue(v) for d, v in scores.items()},
                "score/overall": dg.FloatMetadataValue(overall(scores)),
                "dagster/row_count": whole.rows_out,
                "rows_written": result.rows_out,
                "rows_in": whole.rows_in,
                "rows_quarantined": whole.quarantined,
                "exact_duplicates_merged": whole.exact_duplicates,
                "key_duplicates_merged": whole.key_duplicates,
                "periods_rebuilt": rebuilt,
                "rebuild_reason": outcome.plan,
                "rows_rebuilt": result.rows_in,
                "rows_flagged": int(result.findings.filter(pl.col("action") == "flagged")["row_number"].len()),
                "delta_version": version,
                "delta_uri": dg.MetadataValue.path(the_lake.uri("std", ds.id)),
                "dagster/column_lineage": lineage,
                "shucang/column_transformations": transformations_table(transformations),
            },
        )
        yield from checks

    return std


def build(reg: Registry | None = None) -> list[dg.AssetsDefinition]:
    reg = reg or registry()
    return [_std_asset(reg, ds) for ds in reg.datasets]
