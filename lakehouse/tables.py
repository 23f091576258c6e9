"""The warehouse's own tables: what the stages write besides the datasets themselves.

Each is declared once here — where it lives, who writes it, what it holds — and from this list come the
Dagster asset each one is, its catalogue entry and its place in lineage. The stages write them through
these names, never a zone and a string of their own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OwnTable:
    zone: str
    name: str
    name_zh: str
    name_en: str
    description: str
    written_by: tuple[str, ...]  # the stages (asset groups) whose steps write it
    grade: str  # DB33/T 2351 level of what it may hold (the quarantine keeps raw values: L4)
    partitioned_by: str | None = None  # each writer replaces its own partition
    own_step: bool = False  # written by a step whose asset it is (assets/resolve.py), not reported by others
    # columns graded below the table (which holds its most sensitive column's grade): what a model may read
    column_grades: tuple[tuple[str, str], ...] = ()

    def grade_of(self, column: str) -> str:
        return dict(self.column_grades).get(column, self.grade)

    @property
    def path(self) -> list[str]:
        return [self.zone, self.name]

    @property
    def label(self) -> str:
        return f"{self.zone}/{self.name}"


FINDINGS = OwnTable(
    "quarantine",
    "findings",
    "问题数据",
    "Quarantined and flagged rows",
    "Every row a std rule quarantined (ERROR) or flagged (WARN), with rule id, reason, the offending value and "
    "the row's provenance (file, row number). Each std run replaces its dataset's partition.",
    ("std",),
    "L4",
    "dataset",
    # the offending raw value and the record's key may be anything the department sent: the table's grade
    column_grades=tuple(
        (c, "L1")
        for c in ("dataset", "department", "source_file", "row_number", "rule_id", "dimension", "severity", "action")
        + ("column", "reason_zh", "reason_en", "partition")
    ),
)
DUPLICATES = OwnTable(
    "quarantine",
    "duplicates",
    "合并的重复数据",
    "Merged duplicates",
    "Rows merged away by std: exact copies and deliveries superseded by a later one with the same business key, "
    "with their provenance. Each std run replaces its dataset's partition.",
    ("std",),
    "L4",
    "dataset",
)
STD_PARTITIONS = OwnTable(
    "quality",
    "std_partitions",
    "标准库分区统计",
    "Std partition statistics",
    "For every periodic dataset and period (partition) of std: rows in, rows written, quarantined, duplicates "
    "merged and values repaired, as (partition, measure, value). A std run that rebuilds some periods replaces "
    "their rows; the dataset's totals — and its quality scores — are the sums over its periods.",
    ("std",),
    "L1",
    "dataset",
)
SCORES = OwnTable(
    "quality",
    "scores",
    "数据质量评分",
    "Quality scores (GB/T 36344)",
    "The history of GB/T 36344 quality scores: one row per dataset per std run, and one per source department "
    "per problem-list run. Appended, never rewritten.",
    ("std", "quality"),
    "L1",
)
COLLECT_LOG = OwnTable(
    "ops",
    "collect_log",
    "归集日志",
    "Collection log",
    "One row per delivered file per collection run: landed, rejected (with reason code, bilingual reason and "
    "position) or skipped as already collected; sizes, hashes, encodings, rows read and landed.",
    ("raw",),
    "L1",
)
CHANGES = OwnTable(
    "publish",
    "changes",
    "共享库变更记录",
    "Published changes",
    "Row-level differences between consecutive versions of every published table: the key, the column, the "
    "old and the new value (e.g. after a correction or an 异议).",
    ("publish",),
    "L2",
)

PROBLEMS = OwnTable(
    "quarantine",
    "problems",
    "问题台账",
    "Problem ledger",
    "Every problem ever raised to a source department (rejected rows, rows to verify, reconciliation "
    "mismatches) and whether a later delivery fixed it; rewritten by each problem-list run.",
    ("quality",),
    "L4",
)
CATALOGUE_COLUMNS = OwnTable(
    "catalogue",
    "columns",
    "数据目录（字段）",
    "Catalogue columns",
    "One row per column of every catalogued dataset: description, type, unit, classification, grade (after "
    "overrides) and identifier role; written with catalogue/datasets.",
    ("catalogue",),
    "L1",
)
GRADE_OVERRIDES = OwnTable(
    "catalogue",
    "grade_overrides",
    "分级调整记录",
    "Grade overrides",
    "Stewards' changes of a column's effective grade in a zone (newest wins), each with its reason; appended "
    "by the audited `grade-override` command and applied by the catalogue.",
    ("steward",),
    "L1",
)

OBJECTIONS = OwnTable(
    "ops",
    "mujun_objections",
    "亩均评价异议",
    "亩均 objections",
    "Enterprises' objections (异议) to their 亩均 evaluation, recorded by a steward with the corrected figure and the "
    "enterprise's statement, then accepted or rejected with a reason — one row per event, appended, never "
    "rewritten. Accepted corrections replace the input they name in topic_mujun_inputs; the evaluation is "
    "recomputed and published as a new version whose change log shows the score and band before and after.",
    ("steward",),
    "L2",
)

ENTITY_MATCHES = OwnTable(
    "ops",
    "entity_matches",
    "主体识别结果",
    "Entity matches",
    "Quarantined records whose only defect is the enterprise's identity (credit code missing or failing GB 32100, "
    "registration name missing), each matched to a known enterprise by code body, supply account or parcel, name "
    "and address, with method, confidence, candidates and status (matched, review, unmatched, confirmed, "
    "rejected). The review queue of the steward console. Each resolution run replaces its dataset's partition.",
    ("resolution",),
    "L3",
    "dataset",
    own_step=True,
)
ENTITY_DECISIONS = OwnTable(
    "ops",
    "entity_match_decisions",
    "主体识别人工确认",
    "Entity match decisions",
    "Stewards' decisions on records in the review queue — confirmed with the enterprise's credit code, or rejected — "
    "each with its reason, the steward and the time; appended, never rewritten, the latest per record applies.",
    ("steward",),
    "L2",
)
COLLECTION_STATUS = OwnTable(
    "ops",
    "collection_status",
    "归集监测",
    "Collection status",
    "For every periodic dataset and period: the delivery its 归集 agreement expects, its due date, and whether it "
    "came on time, late, only as refused files, not at all, or is not yet due (pending); files landed and "
    "refused, rows landed against the typical period, why files were refused. Rewritten by each check (every "
    "delivery and every hour); the 亩均 completeness reads which months were delivered late or not at all.",
    ("ops",),
    "L1",
    own_step=True,
)
DEAD_LETTERS = OwnTable(
    "quarantine",
    "dead_letters",
    "死信消息",
    "Dead letters",
    "Every stream message that could not be a row — not JSON, not an object, without its key or its time, a "
    "value of the wrong kind — with the stream, its sequence, the subject, the message as received and the "
    "reason; acknowledged once recorded, so it neither blocks the stream nor is lost.",
    ("raw",),
    "L4",
    "dataset",
)
MODEL_SCHEMAS = OwnTable(
    "ops",
    "model_schemas",
    "模型字段记录",
    "Model columns (Sail)",
    "With the dbt models on Sail (SHUCANG_DBT_TARGET=sail): the columns of every model and seed as the engine "
    "reported them after the last build — the staging views included, which the lake does not hold — schema, "
    "model, column, type and position; the models' column lineage is derived from it. Replaced by every build "
    "on Sail; never written on DuckDB, whose file keeps the same itself.",
    ("dbt",),
    "L1",
)
# the datasets whose records name an enterprise by credit code and by name: quarantined for identity alone,
# they are matched (quality/resolution.py) and their resolved rows join std in the staging models
RESOLVED_DATASETS = (
    "amr_registration",
    "tax_monthly",
    "stats_annual",
    "power_monthly",
    "land_parcels",
    "eco_emissions",
    "ent_production",
)


def resolved_table(dataset: str) -> OwnTable:
    return OwnTable(
        "ops",
        f"resolved_{dataset}",
        f"主体识别补入记录（{dataset}）",
        f"Resolved records of {dataset}",
        f"Rows of std/{dataset} quarantined for the enterprise's identity alone and matched (ops/entity_matches): "
        "conformed with the dataset's rules and the matched credit code, in the std schema plus the method, the "
        "confidence and the std row each takes the place of (same key). The staging model reads std and these.",
        ("resolution",),
        "L3",
        own_step=True,
    )


RESOLVED = tuple(resolved_table(d) for d in RESOLVED_DATASETS)

OWN_TABLES = (
    FINDINGS,
    DUPLICATES,
    STD_PARTITIONS,
    SCORES,
    COLLECT_LOG,
    CHANGES,
    PROBLEMS,
    CATALOGUE_COLUMNS,
    GRADE_OVERRIDES,
    OBJECTIONS,
    ENTITY_MATCHES,
    ENTITY_DECISIONS,
    COLLECTION_STATUS,
    DEAD_LETTERS,
    MODEL_SCHEMAS,
    *RESOLVED,
)
BY_LABEL = {t.label: t for t in OWN_TABLES}
