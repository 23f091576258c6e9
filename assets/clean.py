"""Clean assets (治理): raw → std for every registered dataset, with the rule catalogue as asset checks.

Write-audit-publish: the batch is standardised and audited in memory; only a batch that passes its
ERROR batch rules and conserves every row is written. Rejected rows go to ``quarantine/findings``.
"""

import datetime as dt
import functools
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa

from assets.collect import asset_tags, column_schema, raw_key
from assets.ingest.collector import PROVENANCE, raw_table_schema
from assets.lake import Lake
from assets.registry import Dataset, Registry, registry
from orchestration.lineage import declare
from orchestration.resources import LakeResource, PrivacyResource
from privacy import policy
from privacy.access import record_policy
from privacy.grading import unclassified
from privacy.keys import KeyRing
from quality.catalogue import RULES_DIR, RuleSet, rules_for
from quality.conform import Conformed, Totals, conform, with_bucket
from quality.gate import STD_TYPES
from quality.scores import SCHEMA as SCORE_SCHEMA
from quality.scores import dataset_scores, overall
from quality.scores import row as score_row
from quality.units import canonical

FINDINGS = "findings"
DUPLICATES = "duplicates"  # rows merged away: exact copies and superseded deliveries
PART_ROWS = 1_000_000  # rows per key bucket when a raw table is conformed in parts


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


def _fingerprint(rules: RuleSet, raw_version: int) -> str:
    """What the std table was computed from: the raw version and the rule catalogue."""
    text = (RULES_DIR / f"{rules.dataset}.yaml").read_text(encoding="utf-8")
    return f"raw@{raw_version}:rules@{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _sample(result: Conformed, rule_id: str) -> str:
    rows = result.findings.filter(pl.col("rule_id") == rule_id).head(5)
    return "\n".join(f"- {r['source_file']} row {r['row_number']}: {r['value']!r}" for r in rows.iter_rows(named=True))


def _check_results(rules: RuleSet, result: Conformed) -> list[dg.AssetCheckResult]:
    out = []
    for r in rules.rules:
        n = result.rule_failures.get(r.id, 0)
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
            passed=result.conserved,
            metadata={
                "rows_in": result.rows_in,
                "rows_out": result.rows_out,
                "quarantined": result.quarantined,
                "exact_duplicates": result.exact_duplicates,
                "key_duplicates_merged": result.key_duplicates,
            },
        )
    )
    return out


def _score(lake, ds: Dataset, rules: RuleSet, result: Conformed) -> dict[str, float]:
    """This run's GB/T 36344 scores, appended to the history in quality/scores."""
    log = lake.read("ops", "collect_log", columns=["dataset", "status"])
    files = log.filter(pl.col("dataset") == ds.id) if log is not None else pl.DataFrame({"status": []})
    scores = dataset_scores(
        rules,
        result.rule_failures,
        result.rows_in - result.exact_duplicates,
        result.rows_in,
        result.exact_duplicates,
        files.height,
        files.filter(pl.col("status") == "landed").height,
        result.repaired,
    )
    row = score_row("dataset", ds.id, ds.department, result.rows_in, scores, dt.datetime.now(dt.UTC))
    lake.append("quality", "scores", pl.DataFrame([row], schema=SCORE_SCHEMA).to_arrow())
    return scores


def std_arrow_schema(ds: Dataset) -> pa.Schema:
    provenance = pl.from_arrow(PROVENANCE.empty_table()).schema
    frame = pl.DataFrame(schema={**{c.name: STD_TYPES[c.type] for c in ds.columns}, **provenance})
    return frame.to_arrow().schema


class _Withheld(Exception):
    """Raised inside the std write stream to abort its commit."""


@contextmanager
def _buckets(lake: Lake, ds: Dataset, rules: RuleSet, raw_table) -> Iterator[list[Callable[[], pl.DataFrame]]]:
    """The raw table as key buckets of about PART_ROWS rows (one bucket when it is small), so memory
    follows the bucket, not the table. Everything that reads Delta happens here, before the std write
    starts: the write stream must not call into deltalake."""
    if raw_table is None:
        yield [lambda: pl.DataFrame(schema=raw_table_schema(ds))]
        return
    rows = lake.row_count("raw", ds.id)
    if rows <= PART_ROWS:
        frame = lake.read("raw", ds.id)
        yield [lambda: frame]
        return
    scan = pl.scan_delta(lake.uri("raw", ds.id), storage_options=lake.storage_options or None)
    with tempfile.TemporaryDirectory(prefix=f"shucang-std-{ds.id}-") as tmp:
        with_bucket(scan, ds, rules, -(-rows // PART_ROWS)).sink_parquet(
            pl.PartitionBy(tmp, key="__bucket", include_key=False), compression="lz4"
        )
        yield [functools.partial(pl.read_parquet, part) for part in sorted(Path(tmp).iterdir())]


def _conform_and_write(
    lake: Lake, ds: Dataset, rules: RuleSet, refs: dict, raw_table, fingerprint: str, ring: KeyRing | None = None
) -> tuple[Conformed, int | None]:
    """Write-audit-publish in one Delta commit: each bucket's std rows stream into the commit after its
    audit; when any bucket fails an ERROR rule, or the whole batch fails the share rule or conservation,
    the stream raises and nothing is committed. Returns the totals and the new version (None: withheld)."""
    totals = Totals(rules)
    schema = std_arrow_schema(ds)
    finished: list[Conformed] = []

    def batches(buckets):
        for load in buckets:
            part = conform(ds, rules, load(), refs, whole=False)
            totals.add(part)
            if not totals.total.blocked:
                std = policy.apply_std(part.std, ds, ring) if ring is not None else part.std
                yield from std.to_arrow().cast(schema).to_batches()
        finished.append(totals.finish())
        if finished[0].blocked or not finished[0].conserved:
            raise _Withheld(ds.id)

    with _buckets(lake, ds, rules, raw_table) as buckets:
        try:
            reader = pa.RecordBatchReader.from_batches(schema, batches(buckets))
            version = lake.overwrite("std", ds.id, reader, metadata={"computed_from": fingerprint})
        except Exception:
            if finished and (finished[0].blocked or not finished[0].conserved):
                return finished[0], None
            raise
    return finished[0], version


def _std_asset(reg: Registry, ds: Dataset) -> dg.AssetsDefinition:
    rules = rules_for(ds.id)
    key = std_key(ds.id)
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
        description=f"**{ds.name_zh}** ({ds.name_en}) — 标准库 std zone.\n\nStandardised (half-width text, ISO "
        f"dates, canonical units), de-duplicated (exact; then by {', '.join(rules.key)} with the latest delivery "
        "winning) and validated against the rule catalogue "
        f"`quality/rules/{ds.id}.yaml`. Rejected rows are in `quarantine/findings` with rule and reason.",
        group_name="std",
        kinds={"polars", "delta", "pandera"},
        owners=[reg.departments[ds.department].owner, reg.defaults.steward],
        tags={**asset_tags(reg, ds, "std")},
        metadata={
            "dagster/column_schema": _std_schema(reg, ds),
            "dagster/table_name": f"std.{ds.id}",
            "rule_catalogue": f"quality/rules/{ds.id}.yaml",
        },
        check_specs=specs,
    )
    def std(context: dg.AssetExecutionContext, lake: LakeResource, privacy: PrivacyResource):
        missing = unclassified(ds)
        if missing:
            yield dg.AssetCheckResult(
                check_name="classified", passed=False, metadata={"unclassified": ", ".join(missing)}
            )
            raise dg.Failure(
                description=f"std/{ds.id}: columns {missing} are not classified (分类分级). The dataset stays in raw "
                f"until a steward sets classification, grade and role for them in assets/sources.yaml; the "
                "privacy_scan asset proposes values."
            )
        yield dg.AssetCheckResult(check_name="classified", passed=True)
        record_policy(privacy.audit())
        ring = privacy.key_ring() if policy.std_transforms(ds) else None
        the_lake = lake.lake()
        raw_table = the_lake.table("raw", ds.id)
        refs = {f"{t}.uscc": the_lake.read("std", t, columns=["uscc"])["uscc"] for t in rules.references}
        fingerprint = _fingerprint(rules, raw_table.version() if raw_table else -1)
        result, version = _conform_and_write(the_lake, ds, rules, refs, raw_table, fingerprint, ring)
        if ring is not None and version is not None:
            privacy.audit().append(
                "key.use",
                purpose="pseudonymise std",
                dataset=f"std.{ds.id}",
                delta_version=version,
                key_version=ring.current,
                columns=sorted(c for c, w in policy.std_transforms(ds).items() if w == "pseudonymise"),
                rows=result.rows_out,
                run_id=context.run.run_id,
            )
        checks = _check_results(rules, result)
        if version is None:
            yield from checks
            reasons = "; ".join(f"{g.rule_id} ({g.count})" for g in result.gate) or "rows do not reconcile"
            raise dg.Failure(
                description=f"std/{ds.id}: batch not written — {reasons}. The std table stays at "
                "its previous version and downstream does not run."
            )
        the_lake.replace_where("quarantine", FINDINGS, result.findings.to_arrow(), "dataset", ds.id)
        merged = result.duplicates.select(pl.lit(ds.id).alias("dataset"), pl.all())
        the_lake.replace_where("quarantine", DUPLICATES, merged.to_arrow(), "dataset", ds.id)
        context.log.info(
            f"std/{ds.id}: {result.rows_in} in → {result.rows_out} std, {result.quarantined} "
            f"quarantined, {result.exact_duplicates + result.key_duplicates} duplicates merged"
        )
        scores = _score(the_lake, ds, rules, result)
        yield dg.MaterializeResult(
            metadata={
                **{f"score/{d}": dg.FloatMetadataValue(v) for d, v in scores.items()},
                "score/overall": dg.FloatMetadataValue(overall(scores)),
                "dagster/row_count": result.rows_out,
                "rows_written": result.rows_out,
                "rows_in": result.rows_in,
                "rows_quarantined": result.quarantined,
                "exact_duplicates_merged": result.exact_duplicates,
                "key_duplicates_merged": result.key_duplicates,
                "rows_flagged": int(result.findings.filter(pl.col("action") == "flagged")["row_number"].len()),
                "delta_version": version,
                "delta_uri": dg.MetadataValue.path(the_lake.uri("std", ds.id)),
                "dagster/column_lineage": lineage,
                "shucang/column_transformations": transformations,
            }
        )
        yield from checks

    return std


def build(reg: Registry | None = None) -> list[dg.AssetsDefinition]:
    reg = reg or registry()
    return [_std_asset(reg, ds) for ds in reg.datasets]
