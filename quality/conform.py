"""raw → std for one dataset: standardise, de-duplicate, validate, and account for every row.

Order: exact duplicates (identical delivered values) merge first, keeping the first delivered; row rules
then quarantine (ERROR) or flag (WARN) rows; among the rows that pass, business-key duplicates merge
with the latest delivery winning (corrections over originals). Conservation:
rows in = rows in std + rows quarantined + duplicates merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from assets.ingest.collector import PROVENANCE
from assets.registry import Dataset
from quality import dates, identifiers, text, units
from quality.catalogue import RowRule, RuleSet
from quality.gate import GateFailure, audit

LATEST = ["_ingested_at", "_period", "_source_file", "_row_number"]
DUPLICATE_COLUMNS = ["_source_file", "_row_number", "_file_sha256", "_batch_id"]
FINDING_SCHEMA = {
    "dataset": pl.String,
    "department": pl.String,
    "source_file": pl.String,
    "row_number": pl.Int64,
    "file_sha256": pl.String,
    "raw_batch_id": pl.String,
    "rule_id": pl.String,
    "dimension": pl.String,
    "severity": pl.String,
    "action": pl.String,
    "column": pl.String,
    "value": pl.String,
    "reason_zh": pl.String,
    "reason_en": pl.String,
    "record_key": pl.String,
}


def record_key(key: list[str]) -> pl.Expr:
    """The business key as text, e.g. 'uscc=9133…|period=2023-05'; '∅' marks a missing part."""
    return pl.concat_str([pl.lit(f"{k}=") + pl.col(k).cast(pl.String).fill_null("∅") for k in key], separator="|")


@dataclass
class Conformed:
    std: pl.DataFrame
    findings: pl.DataFrame  # one row per (row, failed rule): quarantined (ERROR) or flagged (WARN)
    rows_in: int
    exact_duplicates: int
    key_duplicates: int
    quarantined: int
    rule_failures: dict[str, int] = field(default_factory=dict)
    gate: list[GateFailure] = field(default_factory=list)
    duplicates: pl.DataFrame | None = None  # provenance of every merged row: exact copy, or superseded
    repaired: dict[str, int] = field(default_factory=dict)  # column → values standardised from another spelling

    @property
    def rows_out(self) -> int:
        return self.std.height

    @property
    def conserved(self) -> bool:
        return self.rows_in == self.rows_out + self.quarantined + self.exact_duplicates + self.key_duplicates

    @property
    def blocked(self) -> bool:
        return any(g.severity == "ERROR" for g in self.gate)


def _std_expr(ds: Dataset, c, names: set[str]) -> pl.Expr:
    raw = pl.col(c.name)
    if c.type == "code":
        return text.clean_code(raw)
    if c.type == "string":
        return text.enterprise_name(raw) if c.name in names else text.clean_text(raw)
    if c.type == "date":
        return dates.parse_date(raw)
    if c.type == "month":
        return dates.parse_month(raw)
    if c.type == "timestamp":
        return dates.parse_timestamp(raw)
    number = text.clean_text(raw).str.replace_all(",", "").cast(pl.Float64, strict=False)
    if c.type == "integer":
        return number.round(0).cast(pl.Int64, strict=False)
    if c.unit_column:
        return number * units.factor_of(text.clean_text(pl.col(c.unit_column)), c.measure)
    return number * units.factors()[c.unit][2] if c.unit and c.unit in units.factors() else number


def _fails(rule: RowRule, raw: pl.Expr, std: pl.Expr, refs: dict[str, pl.Series]) -> pl.Expr:
    """True where the row breaks the rule; a rule on a missing value is the 'required' rule's business."""
    present = std.is_not_null()
    match rule.check:
        case "required":
            return std.is_null()
        case "uscc":
            return present & identifiers.uscc_problem(std).is_not_null()
        case "ric":
            return present & identifiers.ric_problem(std).is_not_null()
        case "mobile":
            return present & identifiers.mobile_problem(std).is_not_null()
        case "region_code":
            return present & ~std.is_in(identifiers.region_codes())
        case "industry_code":
            return present & ~std.is_in(identifiers.industry_codes())
        case "pattern":
            return present & ~std.cast(pl.String).str.contains(rule.pattern)
        case "parsed":  # something was delivered but it is not a value of the column's type
            return text.clean_text(raw).is_not_null() & std.is_null()
        case "in":
            return present & ~std.cast(pl.String).is_in(rule.values)
        case "range":
            lo = std < rule.min if rule.min is not None else pl.lit(False)
            hi = std > rule.max if rule.max is not None else pl.lit(False)
            return present & (lo | hi)
        case "unit_known":
            return text.clean_text(raw).is_null() | units.factor_of(text.clean_text(raw), rule.measure).is_null()
        case "references":
            return present & ~std.is_in(refs[f"{rule.table}.{rule.table_column}"].implode())
        case "not_after_ingest":
            when = pl.col("_ingested_at").dt.date()
            return present & ((std > when) if std.meta.output_name() != "period" else (std > when.dt.strftime("%Y-%m")))
    raise ValueError(f"unknown check {rule.check!r}")


def conform(ds: Dataset, rules: RuleSet, raw: pl.DataFrame, refs: dict[str, pl.Series] | None = None) -> Conformed:
    refs = refs or {}
    missing = sorted(
        f"{r.table}.{r.table_column}"
        for r in rules.rules
        if r.check == "references" and f"{r.table}.{r.table_column}" not in refs
    )
    if missing:
        raise ValueError(f"{ds.id}: referential rules need the std values of {missing}; materialise those first")
    source = [c.name for c in ds.columns]
    rows_in = raw.height
    # 1. exact duplicates: the same delivered values again (wherever delivered); the first stays
    ordered = raw.sort(LATEST).with_row_index("__order")
    deduped = ordered.unique(subset=source, keep="first", maintain_order=True)
    exact = rows_in - deduped.height
    merged_exact = ordered.join(deduped.select("__order"), on="__order", how="anti")
    # 2. standardise every column, keeping the delivered text beside it for the rules and the findings
    names = set(rules.names)
    frame = deduped.with_columns(
        *(pl.col(c.name).alias(f"__raw_{c.name}") for c in ds.columns),
    ).with_columns(*(_std_expr(ds, c, names).alias(c.name) for c in ds.columns))
    flags = [
        _fails(r, pl.col(f"__raw_{r.column}"), pl.col(r.column), refs).fill_null(True).alias(f"__fail_{r.id}")
        for r in rules.rules
    ]
    frame = frame.with_columns(flags)
    errors = [f"__fail_{r.id}" for r in rules.rules if r.severity == "ERROR"]
    frame = frame.with_columns((pl.any_horizontal(errors) if errors else pl.lit(False)).alias("__quarantined"))
    findings = _findings(ds, rules, frame)
    rule_failures = {r.id: int(frame[f"__fail_{r.id}"].sum()) for r in rules.rules}
    # delivered in a non-standard spelling but repaired: dates and months not written the ISO way
    repaired = {
        c.name: int(
            frame.select(
                (pl.col(c.name).cast(pl.String) != text.clean_text(pl.col(f"__raw_{c.name}"))).fill_null(False).sum()
            ).item()
        )
        for c in ds.columns
        if c.type in ("date", "month")
    }
    passing = frame.filter(~pl.col("__quarantined"))
    quarantined = frame.height - passing.height
    # 3. business-key duplicates among passing rows: the latest delivery wins
    std = passing.unique(subset=rules.key, keep="last", maintain_order=True)
    keyed = passing.height - std.height
    merged_key = passing.join(std.select("__order"), on="__order", how="anti")
    duplicates = pl.concat(
        [
            merged_exact.select(*DUPLICATE_COLUMNS, pl.lit("exact").alias("kind")),
            merged_key.select(*DUPLICATE_COLUMNS, pl.lit("superseded").alias("kind")),
        ]
    )
    std = std.select(*source, *(f.name for f in PROVENANCE))
    result = Conformed(
        std, findings, rows_in, exact, keyed, quarantined, rule_failures, duplicates=duplicates, repaired=repaired
    )
    result.gate = audit(std, ds, rules, rows_in, quarantined)
    return result


def _findings(ds: Dataset, rules: RuleSet, frame: pl.DataFrame) -> pl.DataFrame:
    parts = []
    for r in rules.rules:
        hit = frame.filter(pl.col(f"__fail_{r.id}"))
        if hit.height == 0:
            continue
        parts.append(
            hit.select(
                pl.lit(ds.id).alias("dataset"),
                pl.col("_source_department").alias("department"),
                pl.col("_source_file").alias("source_file"),
                pl.col("_row_number").alias("row_number"),
                pl.col("_file_sha256").alias("file_sha256"),
                pl.col("_batch_id").alias("raw_batch_id"),
                pl.lit(r.id).alias("rule_id"),
                pl.lit(r.dimension).alias("dimension"),
                pl.lit(r.severity).alias("severity"),
                pl.lit("quarantined" if r.severity == "ERROR" else "flagged").alias("action"),
                pl.lit(r.column).alias("column"),
                pl.col(f"__raw_{r.column}").alias("value"),
                pl.lit(r.zh).alias("reason_zh"),
                pl.lit(r.en).alias("reason_en"),
                record_key(rules.key).alias("record_key"),
            )
        )
    return pl.concat(parts) if parts else pl.DataFrame(schema=FINDING_SCHEMA)
