"""Publication (共享库): a model's rows become a versioned Delta table in the publish zone, after a quality
gate and a privacy gate that must both pass — validate, then write.

Each version's commit records the inputs it was built from and a content hash; publishing unchanged
content writes no new version, and a changed table (a corrected input, an 异议) gets its row-level
differences appended to ``publish/changes``: the key, the column, the old and the new value.

Plain code over the lake, free of Dagster; the publish assets load the model's rows and call it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import polars as pl

from lakehouse.lake import Lake
from lakehouse.tables import CHANGES
from privacy import gate as privacy_gate
from privacy.grading import Grading

CHANGE_SCHEMA = {"key": pl.String, "column": pl.String, "old": pl.String, "new": pl.String}


@dataclass(frozen=True)
class Model:
    """What publication knows of a model: its name, business key, declared columns, quasi-identifiers."""

    name: str
    key: list[str]
    columns: list[str]
    quasi: list[str]
    classification: dict[str, str] = field(default_factory=dict)  # column → declared classification
    # What the model discloses (meta ``disclosure``): "identified" — firm-level results by design, shared
    # only with consumers entitled to named firms — or "deidentified" — then its quasi-identifiers are
    # declared (k-anonymity) and/or, for aggregates, the column counting the firms in each row
    # (meta ``small_cell_count``): cells of fewer than k are suppressed.
    disclosure: str | None = None
    small_cell_count: list[str] = field(default_factory=list)
    # A periodic model (meta ``period_column``): a new version replaces only the periods whose rows changed.
    period: str | None = None


DISCLOSURES = ("identified", "deidentified")


def suppress_small_cells(frame: pl.DataFrame, model: Model, k: int) -> tuple[pl.DataFrame, int]:
    """An aggregate's cells of fewer than ``k`` firms: every value but the cell's key set to null (the row
    stays, so the table says the cell exists and was suppressed). Returns the frame and the rows suppressed."""
    counts = [c for c in model.small_cell_count if c in frame.columns]
    if model.disclosure != "deidentified" or not counts:
        return frame, 0
    small = pl.any_horizontal(pl.col(c).is_null() | (pl.col(c) < k) for c in counts)
    hidden = [c for c in frame.columns if c not in model.key]
    out = frame.with_columns(pl.when(small).then(None).otherwise(pl.col(c)).alias(c) for c in hidden)
    return out, frame.filter(small).height


def disclosure_problems(frame: pl.DataFrame, model: Model, k: int) -> list[str]:
    """What the model's declaration of what it discloses leaves open."""
    if model.disclosure not in DISCLOSURES:
        return [
            f"disclosure: {model.name} declares {model.disclosure!r}; declare meta disclosure: identified "
            "(firm-level by design, only for consumers entitled to named firms) or deidentified (with quasi "
            "identifiers, or small_cell_count for an aggregate)"
        ]
    if model.disclosure == "identified":
        return []
    problems = []
    if not model.quasi and not model.small_cell_count:
        problems.append(
            f"disclosure: {model.name} is deidentified but declares no quasi-identifier and no small_cell_count"
        )
    missing = [c for c in model.small_cell_count if c not in frame.columns]
    if missing:
        problems.append(f"disclosure: small_cell_count {missing} not among the columns of {model.name}")
    elif model.small_cell_count:
        counts = model.small_cell_count
        hidden = [c for c in frame.columns if c not in model.key]
        small = pl.any_horizontal(pl.col(c).is_not_null() & (pl.col(c) < k) for c in counts)
        unsuppressed = pl.any_horizontal(pl.col(c).is_null() for c in counts) & pl.any_horizontal(
            pl.col(c).is_not_null() for c in hidden
        )
        open_small = frame.filter(small | unsuppressed).height
        if open_small:
            problems.append(f"small_cells: {open_small} row(s) aggregate fewer than {k} firms and are not suppressed")
    return problems


@dataclass(frozen=True)
class Gates:
    quality: list[str]  # problems that fail the quality gate
    privacy: list[str]  # problems that fail the privacy gate
    highest_level: str

    @property
    def passed(self) -> bool:
        return not self.quality and not self.privacy


@dataclass(frozen=True)
class Published:
    version: int
    unchanged: bool
    content_sha256: str
    changes: pl.DataFrame  # empty when unchanged or first published
    changes_version: int | None = None  # the version of publish/changes written, if any


def content_hash(frame: pl.DataFrame, key: list[str]) -> str:
    """SHA-256 of the rows in key order: equal content, equal hash, whatever order the rows came in."""
    ordered = frame.sort(key or frame.columns, nulls_last=True)
    return hashlib.sha256(ordered.write_csv(float_precision=12).encode("utf-8")).hexdigest()


def changes(old: pl.DataFrame, new: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """Row-level differences keyed by ``key``: one row per (key, column) that was added, removed or changed."""
    values = [c for c in new.columns if c not in key]
    both = old.join(new, on=key, how="full", suffix="__new", coalesce=True, nulls_equal=True)
    parts = []
    for c in values:
        if c not in old.columns:
            continue
        before, after = pl.col(c), pl.col(f"{c}__new")
        parts.append(
            both.filter(before.ne_missing(after)).select(
                pl.struct(key).struct.json_encode().alias("key"),
                pl.lit(c).alias("column"),
                before.cast(pl.String).alias("old"),
                after.cast(pl.String).alias("new"),
            )
        )
    if not parts:
        return pl.DataFrame(schema=CHANGE_SCHEMA)
    return pl.concat(parts).sort("key", "column")


def check_gates(frame: pl.DataFrame, model: Model, grades: dict[str, dict], failed_tests: list[str]) -> Gates:
    """The quality gate (dbt tests and contract passed, not empty, key unique, declared columns present) and
    the privacy gate (``privacy.gate`` on the propagated grades; every column graded)."""
    quality = [f"dbt test failed: {t}" for t in failed_tests]
    if frame.height == 0:
        quality.append("the model is empty")
    if model.key and frame.height and frame.select(model.key).is_duplicated().any():
        quality.append(f"key {model.key} is not unique")
    missing = sorted(set(model.columns) - set(frame.columns))
    if missing:
        quality.append(f"declared columns missing: {missing}")
    gradings = {c: Grading(model.classification.get(c) or "metadata", g["level"], g["role"]) for c, g in grades.items()}
    transformed = {c: g["transform"] for c, g in grades.items() if g.get("transform")}
    privacy = [f"{p.rule}: {p.detail}" for p in privacy_gate.check(frame, gradings, transformed, model.quasi)]
    privacy += disclosure_problems(frame, model, privacy_gate.k())
    privacy += [f"grade: {c} has no propagated grade" for c in sorted(set(frame.columns) - set(grades))]
    return Gates(quality, privacy, max((g["level"] for g in grades.values()), default="L1"))


def _last_commit(table) -> dict:
    for entry in table.history(1):
        return entry
    return {}


def _period_hashes(frame: pl.DataFrame, period: str, key: list[str]) -> dict:
    """A content hash per period (rows in key order, as ``content_hash``)."""
    return {
        p: content_hash(part, key)
        for (p,), part in frame.partition_by(period, as_dict=True, maintain_order=False).items()
    }


def _literal(value) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def write_if_changed(
    lake: Lake,
    name: str,
    frame: pl.DataFrame,
    key: list[str],
    commit: dict[str, str] | None = None,
    period: str | None = None,
) -> tuple[int, bool, str, pl.DataFrame | None, list | None]:
    """Write ``frame`` (in key order) as the next version of ``publish/<name>`` unless the current version
    has the same content. With ``period`` (a periodic model), the version replaces only the periods whose
    rows changed, appeared or disappeared (a predicate overwrite: its change set is those periods' rows).
    Returns (version, unchanged, content hash, the previous rows when rewritten, the periods replaced —
    None when the whole table was)."""
    digest = content_hash(frame, key)
    current = lake.table("publish", name)
    if current is not None and _last_commit(current).get("content_sha256") == digest:
        return current.version(), True, digest, None, []
    previous = pl.from_arrow(current.to_pyarrow_table()) if current is not None else None
    ordered = frame.sort(key or frame.columns)
    metadata = {"content_sha256": digest, **(commit or {})}
    same_schema = previous is not None and previous.schema == frame.schema
    if period is not None and same_schema and period in frame.columns and frame[period].null_count() == 0:
        old, new = _period_hashes(previous, period, key), _period_hashes(frame, period, key)
        touched = sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
        where = f"{period} IN ({', '.join(_literal(p) for p in touched)})"
        rows = ordered.filter(pl.col(period).is_in(touched)).to_arrow()
        version = lake.overwrite_where(
            "publish", name, rows, where, metadata={**metadata, "periods": json.dumps(touched, default=str)}
        )
        return version, False, digest, previous, touched
    version = lake.overwrite("publish", name, ordered.to_arrow(), metadata={**metadata, "periods": "all"})
    return version, False, digest, previous, None


def publish(lake: Lake, model: Model, frame: pl.DataFrame, commit: dict[str, str], run_id: str) -> Published:
    """Write ``frame`` as the next version of ``publish/<name>`` unless its content is unchanged; log the
    row-level changes against the previous version. Call only after ``check_gates`` passed."""
    version, unchanged, digest, previous, touched = write_if_changed(
        lake, model.name, frame, model.key, commit, model.period
    )
    if unchanged:
        return Published(version, True, digest, pl.DataFrame(schema=CHANGE_SCHEMA))
    diff = pl.DataFrame(schema=CHANGE_SCHEMA)
    logged = None
    if previous is not None and model.key:
        if touched is not None:  # only the replaced periods can differ: the rest hash the same, row for row
            replaced = pl.col(model.period).is_in(touched)
            previous, frame = previous.filter(replaced), frame.filter(replaced)
        diff = changes(previous, frame, model.key)
        if diff.height:
            log = diff.select(
                pl.lit(model.name).alias("dataset"),
                pl.lit(version - 1, pl.Int64).alias("from_version"),
                pl.lit(version, pl.Int64).alias("to_version"),
                pl.all(),
                pl.lit(run_id).alias("run_id"),
            )
            logged = lake.append(CHANGES.zone, CHANGES.name, log.to_arrow())
    return Published(version, False, digest, diff, logged)
