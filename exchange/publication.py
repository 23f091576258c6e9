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
import pyarrow as pa
import pyarrow.dataset as pads

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
    written: int = 0  # rows written (a periodic model: those of the periods replaced)
    periods: list[str] | None = None  # the periods replaced; None: the whole table


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


def check_gates(
    frame: pl.DataFrame, model: Model, grades: dict[str, dict], failed_tests: list[str], rows: int | None = None
) -> Gates:
    """The quality gate (dbt tests and contract passed, not empty, key unique, declared columns present) and
    the privacy gate (``privacy.gate`` on the propagated grades; every column graded). ``rows``: the
    model's rows when ``frame`` holds only some of its periods."""
    quality = [f"dbt test failed: {t}" for t in failed_tests]
    if (frame.height if rows is None else rows) == 0:
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
        str(p): content_hash(part, key)
        for (p,), part in frame.partition_by(period, as_dict=True, maintain_order=False).items()
    }


def _digest(hashes: dict[str, str]) -> str:
    """The content hash of a periodic table: over its periods' hashes, so a version that replaced some
    periods is hashed from the ones it kept and the ones it wrote, without reading the rest."""
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()


def _literal(value) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


WHOLE = "*"  # the one 'period' of a model without a period column


def fingerprints(con, relation: str, model: Model) -> dict[str, str]:
    """What the warehouse holds of a model, cheaply: per period (``WHOLE`` for a model without one) its
    row count and the sum of DuckDB's hashes of its rows, computed where the rows are. A period whose
    fingerprint equals the one recorded with the published version is not read again (``to_load``); a
    fingerprint from another DuckDB version only makes more periods look changed, never fewer."""
    columns = [r[0] for r in con.execute(f"select * from {relation} limit 0").description]
    row = f"hash({', '.join(_quoted(c) for c in columns)})"
    group = _quoted(model.period) if model.period in columns else None
    sql = f"select {group if group else repr(WHOLE)}::varchar, count(*), sum({row})::varchar from {relation}"
    rows = con.execute(sql + (f" group by {group}" if group else "")).fetchall()
    return {str(p): f"{n}:{h}" for p, n, h in rows if n}


def rows(prints: dict[str, str]) -> int:
    """The model's rows, from its fingerprints."""
    return sum(int(v.split(":", 1)[0]) for v in prints.values())


def load(con, relation: str, model: Model, periods: list[str] | None) -> pl.DataFrame:
    """The model's rows from the warehouse: all of them (``periods`` None), or those of ``periods`` (as
    ``fingerprints`` names them)."""
    if periods is None:
        return con.sql(f"select * from {relation}").pl()
    marks = ", ".join("?" for _ in periods)
    return con.sql(f"select * from {relation} where {_quoted(model.period)}::varchar in ({marks})", params=periods).pl()


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def gate_basis(model: Model, grades: dict, failed_tests: list[str], types: dict[str, str], k: int) -> str:
    """A digest of everything besides the rows that the gates and the written table depend on: the
    model's declaration, the propagated grades, the failed dbt tests, the column types and k. Periods are
    only published incrementally while it is unchanged — any change re-gates every row."""
    basis = {
        "model": {f: getattr(model, f) for f in model.__dataclass_fields__},
        "grades": grades,
        "failed": sorted(failed_tests),
        "types": types,
        "k": k,
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()


def incremental(model: Model) -> bool:
    """A model whose periods can be read, gated and replaced one by one: a period column in its key
    (uniqueness and the change log hold per period) and no quasi-identifier spanning periods."""
    return bool(model.period and model.period in model.key and (not model.quasi or model.period in model.quasi))


def _state_file(name: str) -> str:
    return f"publish_fingerprints/{name}.json"


def record(lake: Lake, name: str, version: int, basis: str, prints: dict[str, str]) -> None:
    """Remember what the published version ``version`` was checked against — also when nothing was
    written because the content was unchanged — for the next ``to_load`` (a file in the private ops
    zone; lost or stale, the next publication reads more, never less)."""
    state = {
        "table_id": lake.table("publish", name).metadata().id,
        "delta_version": version,
        "gate_basis": basis,
        "fingerprints": json.dumps(prints, sort_keys=True),
    }
    lake.write_bytes("ops", _state_file(name), json.dumps(state, sort_keys=True).encode())


def to_load(lake: Lake, model: Model, prints: dict[str, str], basis: str) -> list[str] | None:
    """The periods of the model to read from the warehouse for this publication: None — all of them (first
    publication, a model that cannot be published by period, or a changed ``gate_basis``); [] — none,
    nothing changed since the published version; else the periods whose fingerprint differs (new and
    vanished periods included). Compared with what ``record`` kept for the current version, else with the
    current version's commit."""
    current = lake.table("publish", model.name)
    if current is None:
        return None
    last = _last_commit(current)
    known = [last]
    try:
        kept = json.loads(lake.read_bytes("ops", _state_file(model.name)) or b"{}")
    except ValueError:
        kept = {}
    if kept.get("delta_version") == current.version() and kept.get("table_id") == current.metadata().id:
        known.insert(0, kept)
    base = next((k for k in known if k.get("gate_basis") == basis and k.get("fingerprints")), None)
    if base is None:
        return None
    old = json.loads(base["fingerprints"])
    changed = sorted(p for p in set(old) | set(prints) if old.get(p) != prints.get(p))
    if not changed:
        return []
    if not incremental(model) or "period_hashes" not in last:
        return None
    if current.metadata().partition_columns != [model.period]:  # laid out before it was partitioned by period
        return None
    return changed


def write_if_changed(
    lake: Lake,
    name: str,
    frame: pl.DataFrame,
    key: list[str],
    commit: dict[str, str] | None = None,
    period: str | None = None,
    loaded: list[str] | None = None,
) -> tuple[int, bool, str, pl.DataFrame | None, list | None]:
    """Write ``frame`` (in key order) as the next version of ``publish/<name>`` unless the current version
    has the same content. With ``period`` (a periodic model), the version replaces only the periods whose
    rows changed, appeared or disappeared (a predicate overwrite: its change set is those periods' rows);
    its table is partitioned by the period on disk, so a replaced period rewrites its own files only.
    ``loaded``: ``frame`` holds only these periods (``to_load``); the others stay as published.
    Returns (version, unchanged, content hash, the previous rows of what was rewritten, the periods
    replaced — None when the whole table was)."""
    current = lake.table("publish", name)
    last = _last_commit(current) if current is not None else {}
    metadata = dict(commit or {})
    periodic = period is not None and period in frame.columns and frame[period].null_count() == 0
    touched: list[str] | None = None  # None: the whole table is written
    if loaded is not None:
        if not periodic or current is None:
            raise ValueError(f"publish/{name}: a partial frame needs a periodic model with a published version")
        old = json.loads(last["period_hashes"])
        fresh = _period_hashes(frame, period, key)
        hashes = {**{p: h for p, h in old.items() if p not in set(loaded)}, **fresh}
        digest = _digest(hashes)
        touched = sorted(p for p in loaded if old.get(p) != fresh.get(p))
        previous = _rows_of(current, period, touched) if touched else None
        if previous is not None and previous.schema != frame.schema:
            raise ValueError(f"publish/{name}: the loaded periods do not have the published schema")
    else:
        hashes = _period_hashes(frame, period, key) if periodic else None
        digest = _digest(hashes) if hashes is not None else content_hash(frame, key)
        if current is not None and last.get("content_sha256") == digest:
            return current.version(), True, digest, None, []
        previous = pl.from_arrow(current.to_pyarrow_table()) if current is not None else None
        by_period = current is not None and current.metadata().partition_columns == [period]
        if periodic and previous is not None and previous.schema == frame.schema and by_period:
            old = _period_hashes(previous, period, key)
            touched = sorted(p for p in set(old) | set(hashes) if old.get(p) != hashes.get(p))
    if touched == []:  # no period's rows differ (a digest recorded otherwise, or only fingerprints moved)
        return current.version(), True, digest, None, []
    if touched is not None:
        version = _replace(lake, name, frame, key, period, touched, hashes, digest, metadata)
        return version, False, digest, previous, touched
    if hashes is not None:
        metadata["period_hashes"] = json.dumps(hashes, sort_keys=True)
    ordered = frame.sort(key or frame.columns)
    version = lake.overwrite(
        "publish",
        name,
        ordered.to_arrow(),
        metadata={**metadata, "content_sha256": digest, "periods": "all"},
        partition_by=[period] if hashes is not None else None,
    )
    return version, False, digest, previous, None


def _rows_of(table, period: str, periods: list[str]) -> pl.DataFrame:
    """The published rows of ``periods`` (file statistics skip the files that hold none of them)."""
    dataset = table.to_pyarrow_dataset()
    values = pa.array(periods).cast(dataset.schema.field(period).type)
    return pl.from_arrow(dataset.to_table(filter=pads.field(period).isin(values)))


def _replace(lake, name, frame, key, period, touched, hashes, digest, metadata) -> int:
    """Overwrite the ``touched`` periods with their rows in ``frame``, recording every period's hash."""
    numeric = frame.schema[period].is_numeric()
    where = f"{period} IN ({', '.join(p if numeric else _literal(p) for p in touched)})"
    wanted = pl.col(period).cast(pl.String).is_in(touched)
    rows = frame.filter(wanted).sort(key or frame.columns).to_arrow()
    return lake.overwrite_where(
        "publish",
        name,
        rows,
        where,
        metadata={
            **metadata,
            "content_sha256": digest,
            "periods": json.dumps(touched, default=str),
            "period_hashes": json.dumps(hashes, sort_keys=True),
        },
    )


def publish(
    lake: Lake,
    model: Model,
    frame: pl.DataFrame,
    commit: dict[str, str],
    run_id: str,
    loaded: list[str] | None = None,
) -> Published:
    """Write ``frame`` as the next version of ``publish/<name>`` unless its content is unchanged; log the
    row-level changes against the previous version. ``loaded``: ``frame`` holds only these periods
    (``to_load``). Call only after ``check_gates`` passed on ``frame``."""
    version, unchanged, digest, previous, touched = write_if_changed(
        lake, model.name, frame, model.key, commit, model.period, loaded
    )
    if unchanged:
        return Published(version, True, digest, pl.DataFrame(schema=CHANGE_SCHEMA))
    diff = pl.DataFrame(schema=CHANGE_SCHEMA)
    logged = None
    if touched is not None:  # only the replaced periods can differ: the rest hash the same, row for row
        replaced = pl.col(model.period).cast(pl.String).is_in(touched)
        previous, frame = previous.filter(replaced) if previous is not None else None, frame.filter(replaced)
    if previous is not None and model.key:
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
    return Published(version, False, digest, diff, logged, frame.height, touched)
