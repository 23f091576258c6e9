"""Entity resolution (主体识别): quarantined records whose only defect is the enterprise's identity — the
credit code missing or failing its check, or (registration) the name missing — matched to the enterprises the
std zone knows, with a method and a confidence.

What is known about an enterprise is read from every std table that carries a credit code: its names (the
registered name, the taxpayer, the 户名 of its supply accounts, the 权利人 of its land, ...), its addresses,
and its other stable keys (a supply account number, a parcel number). A record is matched by, in order:

- ``steward``        a steward's decision in ``ops/entity_match_decisions`` (confirmed or rejected)
- ``code_body``      its credit code fails only the check character, and a known code with the same first 17
                     characters carries its name (a check-digit typo)                              0.99
- ``entity_key``     the same supply account / parcel carries one credit code in the dataset's std rows  0.99
- ``name_address``   its name and address are one known enterprise's                                0.99
- ``name``           its name is exactly one known enterprise's                                     0.97
- ``former_name``    its name is one enterprise's former name (the registration's 曾用名): departments
                     with slower registers keep listing a renamed firm under the old name           0.95
- ``name_by_code``   (name missing, code valid) the code is known, with one name                     0.99
- ``name_core``      its name without the place prefix (浙江省/台州市/黄岩区…) is one known enterprise's  0.85
A single candidate at 0.9 or more is ``matched`` and feeds the models (weaker candidates beside it stay
listed); several candidates at 0.9 or more, or only weaker ones, go to ``review`` for a steward (the console's
review queue); no candidate is ``unmatched`` and the record stays in quarantine.

A matched record is conformed again with the dataset's own rules and the identity filled in — the same
standardisation, privacy transform and precedence (a correction beats the filing it corrects) as std — so
a resolved row is exactly the row std would hold had the department sent the code. Where it takes the place
of a std row with the same key (a resolved 更正 of a month std holds the 正常 filing of), the std row it
displaces is named. Plain code over the lake, free of Dagster.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
from stdnum.cn import uscc as uscc_code

from lakehouse.lake import Lake
from lakehouse.registry import Dataset, registry
from lakehouse.tables import ENTITY_DECISIONS, ENTITY_MATCHES, RESOLVED_DATASETS, resolved_table
from privacy.audit import AuditLog
from quality import text
from quality.conform import NO_PERIOD, conform, period_text
from quality.rulebook import RuleSet, rules_for
from quality.standardise import std_arrow_schema

REGISTRATION = "amr_registration"  # resolved first: its rows name the firms the other datasets' records mean
MATCHED_AT = 0.9  # a single candidate at this confidence or more feeds the models without review
CONFIDENCE = {
    "steward": 1.0,
    "code_body": 0.99,
    "entity_key": 0.99,
    "name_address": 0.99,
    "name_by_code": 0.99,
    "name": 0.97,
    "former_name": 0.95,
    "name_core": 0.85,
}
MATCH_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("source_file", pa.string()),
        ("row_number", pa.int64()),
        ("failed_rules", pa.string()),  # the identity rules the record failed, comma-separated
        ("delivered_code", pa.string()),  # the credit code as delivered (the quarantine keeps it too)
        ("record_name", pa.string()),
        ("record_address", pa.string()),
        ("method", pa.string()),
        ("uscc", pa.string()),  # the matched enterprise (matched, confirmed) or the best candidate (review)
        ("name", pa.string()),  # its known name
        ("confidence", pa.float64()),
        ("candidates", pa.string()),  # every candidate: "code 名称 (method confidence)", '；'-separated
        ("status", pa.string()),  # matched | review | unmatched | confirmed | rejected
        ("resolved", pa.bool_()),  # its row is in ops/resolved_<dataset> and feeds the models
        ("note", pa.string()),  # why a matched record was not resolved (another defect), or the steward's reason
        ("resolved_at", pa.timestamp("us", tz="UTC")),
    ]
)
DECISION_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("source_file", pa.string()),
        ("row_number", pa.int64()),
        ("decision", pa.string()),  # confirmed | rejected
        ("uscc", pa.string()),  # the enterprise confirmed (confirmed)
        ("reason", pa.string()),
        ("actor", pa.string()),
        ("decided_at", pa.timestamp("us", tz="UTC")),
    ]
)
RESOLUTION_COLUMNS = {
    "_resolution_method": pl.String,
    "_resolution_confidence": pl.Float64,
    "_displaces_file": pl.String,  # the std row this one takes the place of (same key), if any
    "_displaces_row": pl.Int64,
}
ARROW_TYPES = {pl.String: pa.string(), pl.Float64: pa.float64(), pl.Int64: pa.int64()}
# leading place names: 浙江省, 台州市 / 台州, a district or county — the part of a name departments drop or add
_PLACE = re.compile(r"^(?:浙江省?)?(?:台州市?)?(?:[\u4e00-\u9fff]{1,3}?[区县])?")
ADDRESS_COLUMNS = ("address", "location")


class ResolutionError(ValueError):
    """A decision that cannot be taken; the message says why."""


@dataclass(frozen=True)
class Resolvable:
    """A dataset whose rows name an enterprise by credit code: which rules are about identity."""

    ds: Dataset
    rules: RuleSet
    identity_rules: frozenset[str]  # rules on the credit code (required, GB 32100), and on the name if required
    name_rules: frozenset[str]  # of those, the ones on the name
    names: tuple[str, ...]
    former_names: tuple[str, ...]  # columns listing the enterprise's earlier registered names
    entity_keys: tuple[str, ...]  # key columns other than the code and the period: account_no, parcel_id
    address: str | None

    @property
    def id(self) -> str:
        return self.ds.id


def resolvables() -> list[Resolvable]:
    out = []
    for dataset in RESOLVED_DATASETS:
        ds = registry().dataset(dataset)
        rules = rules_for(dataset)
        code = {
            r.id
            for r in rules.rules
            if r.column == "uscc" and r.check in ("required", "uscc") and r.severity == "ERROR"
        }
        if not code or not rules.names:
            raise ValueError(f"{dataset}: resolution needs ERROR rules on uscc and the rule book's names")
        named = {
            r.id for r in rules.rules if r.column in rules.names and r.check == "required" and r.severity == "ERROR"
        }
        period = {ds.period.column} if ds.period is not None else set()
        cols = {c.name for c in ds.columns}
        out.append(
            Resolvable(
                ds,
                rules,
                frozenset(code | named),
                frozenset(named),
                tuple(rules.names),
                tuple(rules.former_names),
                tuple(k for k in rules.key if k != "uscc" and k not in period),
                next((a for a in ADDRESS_COLUMNS if a in cols), None),
            )
        )
    return out


def norm_name(e: pl.Expr) -> pl.Expr:
    """A name as std spells it (``text.name_of`` on cleaned text)."""
    return text.name_of(text.clean_text(e))


def core_name(e: pl.Expr) -> pl.Expr:
    return e.str.replace(_PLACE.pattern, "")


FORMER_SEPARATORS = r"[;；,，、]"  # between the names of a 曾用名 list (std has made full-width ones half-width)


NAME_SCHEMA = {"uscc": pl.String, "name": pl.String, "address": pl.String, "source": pl.String, "former": pl.Boolean}
KEY_SCHEMA = {"dataset": pl.String, "column": pl.String, "value": pl.String, "uscc": pl.String}


def _name_frames(rows: pl.LazyFrame, r: Resolvable) -> list[pl.LazyFrame]:
    """The names (current, and former ones from a 曾用名 list) the rows of a dataset give their credit codes."""
    rows = rows.filter(pl.col("uscc").is_not_null())
    address = pl.col(r.address).cast(pl.String) if r.address else pl.lit(None, pl.String)
    out = [
        rows.select(
            "uscc",
            pl.col(n).cast(pl.String).alias("name"),
            address.alias("address"),
            pl.lit(r.id).alias("source"),
            pl.lit(False).alias("former"),
        )
        .filter(pl.col("name").is_not_null())
        .unique()
        for n in r.names
    ]
    out += [
        rows.select(
            "uscc",
            pl.col(f).cast(pl.String).str.replace_all(FORMER_SEPARATORS, ";").str.split(";").alias("name"),
            pl.lit(None, pl.String).alias("address"),
            pl.lit(r.id).alias("source"),
            pl.lit(True).alias("former"),
        )
        .explode("name")
        .with_columns(norm_name(pl.col("name")).alias("name"))
        .filter(pl.col("name").is_not_null())
        .unique()
        for f in r.former_names
    ]
    return out


def _derived(names: list[pl.DataFrame]) -> pl.DataFrame:
    """The names, once each, with their core (no place prefix) and their code's body (first 17 characters)."""
    frame = pl.concat(names).unique() if names else pl.DataFrame(schema=NAME_SCHEMA)
    return frame.with_columns(core_name(pl.col("name")).alias("core"), pl.col("uscc").str.slice(0, 17).alias("body"))


def known(lake: Lake, items: list[Resolvable]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(uscc, name, address, source, former, core, body) for every name std holds with a credit code (former: an
    earlier registered name, not the current one; core: the name without its place prefix; body: the code's
    first 17 characters); and (dataset, column, value, uscc) for the entity keys (supply accounts, parcels).
    Each table is scanned for its columns and de-duplicated before anything is derived from a name."""
    names, keys = [], []
    for r in items:
        scan = lake.scan("std", r.id)
        if scan is None:
            continue
        cols = ["uscc", *r.names, *r.former_names, *r.entity_keys, *([r.address] if r.address else [])]
        std = scan.select(cols)
        names += _name_frames(std, r)
        keys += [
            std.select(
                pl.lit(r.id).alias("dataset"),
                pl.lit(k).alias("column"),
                pl.col(k).cast(pl.String).alias("value"),
                "uscc",
            )
            .filter(pl.col("uscc").is_not_null() & pl.col("value").is_not_null())
            .unique()
            for k in r.entity_keys
        ]
    frames = pl.collect_all([*names, *keys])
    return (
        _derived(frames[: len(names)]),
        pl.concat(frames[len(names) :]).unique() if keys else pl.DataFrame(schema=KEY_SCHEMA),
    )


def with_resolved_names(names: pl.DataFrame, r: Resolvable, resolved: pl.DataFrame | None) -> pl.DataFrame:
    """The known names and those of a dataset's resolved rows: a registration quarantined for its code and
    resolved still tells the others the firm's name and former names."""
    if resolved is None or resolved.height == 0:
        return names
    added = pl.collect_all(_name_frames(resolved.lazy(), r))
    return _derived([names.drop("core", "body"), *added])


def _rows_of(lake: Lake, zone: str, dataset: str, at: pl.DataFrame) -> pl.DataFrame:
    """The rows of a table at (``_source_file``, ``_row_number``): a lazy scan that reads only those files."""
    files = at["_source_file"].unique().implode()
    return (
        lake.scan(zone, dataset)
        .filter(pl.col("_source_file").is_in(files))
        .join(at.lazy(), on=["_source_file", "_row_number"], how="inner")
        .collect()
    )


def findings_read(lake: Lake) -> pl.DataFrame | None:
    return lake.read("quarantine", "findings", columns=["dataset", "source_file", "row_number", "rule_id", "action"])


def quarantined_identity(lake: Lake, r: Resolvable, findings: pl.DataFrame | None = None) -> pl.DataFrame:
    """The raw rows quarantined for their identity alone (every ERROR they failed is an identity rule), with
    ``__failed`` (the rules). ``findings``: the quarantine as ``findings_read`` gives it (read when not given)."""
    findings = findings if findings is not None else findings_read(lake)
    if findings is None:
        return pl.DataFrame()
    errors = {x.id for x in r.rules.rules if x.severity == "ERROR"}
    rows = (
        findings.filter((pl.col("dataset") == r.id) & pl.col("rule_id").is_in(sorted(errors)))
        .group_by("source_file", "row_number")
        .agg(pl.col("rule_id").unique().sort().alias("__failed"))
        .filter(pl.col("__failed").list.eval(pl.element().is_in(sorted(r.identity_rules))).list.all())
    )
    if rows.height == 0:
        return pl.DataFrame()
    return _rows_of(lake, "raw", r.id, rows.rename({"source_file": "_source_file", "row_number": "_row_number"}))


RECORD = ["_source_file", "_row_number"]
# when one enterprise is found by several methods of equal confidence, the one named is the first of these
METHOD_ORDER = ["code_body", "name_by_code", "entity_key", "name_address", "name", "former_name", "name_core"]


def _candidates(prepared: pl.DataFrame, r: Resolvable, names: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """(record, uscc, method, confidence) for every enterprise each record could be, by its best method:
    joins of the records with the known names, name cores, code bodies, former names and entity keys."""
    rec = prepared.select(
        *RECORD, "__code", "__name", "__address", "__core", "__name_only", *(f"__key_{k}" for k in r.entity_keys)
    )
    current, former = names.filter(~pl.col("former")), names.filter(pl.col("former"))
    named, only = rec.filter(~pl.col("__name_only")), rec.filter(pl.col("__name_only"))
    found = [
        # the code is valid; the name is what is missing: a code std knows
        only.join(current.select("uscc").unique(), left_on="__code", right_on="uscc", how="inner").select(
            *RECORD, pl.col("__code").alias("uscc"), pl.lit("name_by_code").alias("method")
        ),
        # a check-character typo: a known code with the same first 17 characters carries the record's name
        named.filter(pl.col("__code").str.len_chars() == 18)
        .filter(~pl.col("__code").map_elements(uscc_code.is_valid, return_dtype=pl.Boolean))
        .join(
            current.select("body", "name", "uscc").unique(),
            left_on=[pl.col("__code").str.slice(0, 17), "__name"],
            right_on=["body", "name"],
            how="inner",
        )
        .select(*RECORD, "uscc", pl.lit("code_body").alias("method")),
        # the name (and the address) of a known enterprise
        named.join(current.select("name", "uscc", "address"), left_on="__name", right_on="name", how="inner")
        .group_by(*RECORD, "uscc")
        .agg((pl.col("address") == pl.col("__address")).fill_null(False).any().alias("__same_address"))
        .select(
            *RECORD,
            "uscc",
            pl.when("__same_address").then(pl.lit("name_address")).otherwise(pl.lit("name")).alias("method"),
        ),
        named.join(former.select("name", "uscc").unique(), left_on="__name", right_on="name", how="inner").select(
            *RECORD, "uscc", pl.lit("former_name").alias("method")
        ),
        named.join(current.select("core", "uscc").unique(), left_on="__core", right_on="core", how="inner").select(
            *RECORD, "uscc", pl.lit("name_core").alias("method")
        ),
    ]
    for k in r.entity_keys:  # a supply account / parcel that one enterprise holds in the dataset's std rows
        held = keys.filter((pl.col("dataset") == r.id) & (pl.col("column") == k)).select("value", "uscc").unique()
        found.append(
            named.join(held, left_on=f"__key_{k}", right_on="value", how="inner")
            .group_by(*RECORD)
            .agg(pl.col("uscc").unique())
            .filter(pl.col("uscc").list.len() == 1)
            .select(*RECORD, pl.col("uscc").list.first(), pl.lit("entity_key").alias("method"))
        )
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    return (
        pl.concat(found)
        .with_columns(
            pl.col("method").replace_strict(CONFIDENCE, return_dtype=pl.Float64).alias("confidence"),
            pl.col("method").replace_strict(order, return_dtype=pl.Int64).alias("__order"),
        )
        .sort(*RECORD, "uscc", pl.col("confidence"), "__order", descending=[False, False, False, True, False])
        .unique([*RECORD, "uscc"], keep="first", maintain_order=True)
        .sort(*RECORD, "confidence", "uscc", descending=[False, False, True, False])
        .drop("__order")
    )


def _known_as(names: pl.DataFrame) -> dict[str, str]:
    """The name each code is known by: the registration's, else the first (by source, then name) that names it."""
    current = names.filter(~pl.col("former"))
    registered = current.filter(pl.col("source") == "amr_registration").group_by("uscc").agg(pl.col("name").max())
    first = current.sort("source", "name").group_by("uscc", maintain_order=True).agg(pl.col("name").first())
    both = first.join(registered, on="uscc", how="left", suffix="_registered")
    return dict(both.select("uscc", pl.coalesce("name_registered", "name")).iter_rows())


def decisions(lake: Lake) -> pl.DataFrame:
    """The latest steward decision per record."""
    d = lake.read(ENTITY_DECISIONS.zone, ENTITY_DECISIONS.name)
    if d is None or d.height == 0:
        return pl.DataFrame(schema=pl.Schema(DECISION_SCHEMA))
    return d.sort("decided_at").unique(["dataset", "source_file", "row_number"], keep="last")


def match(
    lake: Lake,
    r: Resolvable,
    names: pl.DataFrame,
    keys: pl.DataFrame,
    at: dt.datetime,
    findings: pl.DataFrame | None = None,
    decided: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the match rows of ``MATCH_SCHEMA`` for the dataset's identity-quarantined records, those records'
    raw rows with ``__uscc``/``__name`` filled for the ones to resolve). ``findings``, ``decided``: the
    quarantine and the stewards' decisions (read here when not given)."""
    raw = quarantined_identity(lake, r, findings)
    empty = pl.DataFrame(schema=pl.Schema(MATCH_SCHEMA))
    if raw.height == 0:
        return empty, raw
    name_col = r.names[0]
    prepared = raw.with_columns(
        text.code_of(text.clean_text(pl.col("uscc"))).alias("__code"),
        pl.coalesce([norm_name(pl.col(n)) for n in r.names]).alias("__name"),
        (norm_name(pl.col(r.address)) if r.address else pl.lit(None, pl.String)).alias("__address"),
        *(text.code_of(text.clean_text(pl.col(k))).alias(f"__key_{k}") for k in r.entity_keys),
        pl.col("__failed").list.eval(pl.element().is_in(sorted(r.name_rules))).list.all().alias("__name_only"),
    ).with_columns(core_name(pl.col("__name")).alias("__core"))
    # only what these records could match: the rows of their names, name cores, code bodies, codes and keys
    all_names, names = (
        names,
        names.filter(
            pl.col("name").is_in(prepared["__name"].drop_nulls().unique().implode())
            | pl.col("core").is_in(prepared["__core"].drop_nulls().unique().implode())
            | pl.col("body").is_in(prepared["__code"].drop_nulls().str.slice(0, 17).unique().implode())
            | pl.col("uscc").is_in(prepared["__code"].drop_nulls().unique().implode())
        ),
    )
    found = _candidates(prepared, r, names, keys)
    by_record = {
        (f, n): list(zip(c, m, p, strict=True))
        for f, n, c, m, p in found.group_by(*RECORD, maintain_order=True)
        .agg("uscc", "method", "confidence")
        .iter_rows()
    }
    decided = {
        (d["source_file"], d["row_number"]): d
        for d in (decided if decided is not None else decisions(lake))
        .filter(pl.col("dataset") == r.id)
        .iter_rows(named=True)
    }
    records = [
        (
            rec,
            by_record.get((rec["_source_file"], rec["_row_number"]), []),
            decided.get((rec["_source_file"], rec["_row_number"])),
        )
        for rec in prepared.iter_rows(named=True)
    ]
    # the name each candidate (or confirmed) code is known by, from every source that names it
    codes = set(found["uscc"]) | {d["uscc"] for _, _, d in records if d is not None and d["uscc"]}
    name_of = _known_as(all_names.filter(pl.col("uscc").is_in(sorted(codes))))
    rows, fill = [], []
    for rec, cands, decision in records:
        listed = "；".join(f"{c} {name_of.get(c, '')} ({m} {p:.2f})" for c, m, p in cands) or None
        if decision is not None and decision["decision"] == "confirmed":
            code, method, conf, status, note = decision["uscc"], "steward", 1.0, "confirmed", decision["reason"]
        elif decision is not None:
            code, method, conf, status, note = None, "steward", None, "rejected", decision["reason"]
        elif not cands:
            code, method, conf, status, note = None, None, None, "unmatched", None
        else:
            # unambiguous: one candidate at the matching confidence; weaker ones (a similar name without the
            # place prefix) do not outweigh an exact name, code or account, but stay listed
            code, method, conf = cands[0]
            strong = [c for c in cands if c[2] >= MATCHED_AT]
            if len(strong) == 1:
                status = "matched"
                note = f"另有 {len(cands) - 1} 个弱匹配候选（仅名称相近）" if len(cands) > 1 else None
            elif strong:
                status, note = "review", f"{len(strong)} 个候选企业，需人工确认"
            else:
                status, note = "review", "匹配置信度不足，需人工确认"
        rows.append(
            {
                "dataset": r.id,
                "source_file": rec["_source_file"],
                "row_number": rec["_row_number"],
                "failed_rules": ",".join(rec["__failed"]),
                "delivered_code": rec["uscc"],
                "record_name": rec["__name"],
                "record_address": rec["__address"],
                "method": method,
                "uscc": code,
                "name": name_of.get(code) if code else None,
                "confidence": conf,
                "candidates": listed,
                "status": status,
                "resolved": False,
                "note": note,
                "resolved_at": at,
            }
        )
        if status in ("matched", "confirmed"):
            fill.append(
                {
                    "_source_file": rec["_source_file"],
                    "_row_number": rec["_row_number"],
                    "__uscc": code,
                    "__known_name": name_of.get(code),
                    "__method": method,
                    "__confidence": conf,
                }
            )
    matches = pl.DataFrame(rows, schema=pl.Schema(MATCH_SCHEMA))
    if not fill:
        return matches, raw.clear()
    # the name a record lacks is filled from what is known for its code only to pass the rules: the resolved row
    # keeps it empty (``resolve_rows``), so the master names the firm from the department that stated the name
    filled = raw.join(pl.DataFrame(fill), on=["_source_file", "_row_number"], how="inner").with_columns(
        pl.col("__uscc").alias("uscc"),
        norm_name(pl.col(name_col)).is_null().alias("__name_filled"),
        pl.when(norm_name(pl.col(name_col)).is_null())
        .then(pl.col("__known_name"))
        .otherwise(pl.col(name_col))
        .alias(name_col),
    )
    return matches, filled


def resolve_rows(
    lake: Lake,
    r: Resolvable,
    filled: pl.DataFrame,
    transform: Callable[[pl.DataFrame], pl.DataFrame] | None,
    refs: dict[str, pl.Series] | None = None,
) -> tuple[pl.DataFrame, dict[tuple[str, int], str]]:
    """The std rows of the filled records (with the resolution columns), conformed together with the raw rows
    of the std rows that share their keys so that the dataset's precedence decides between them; and, for a
    filled record that did not come through, why (record → note). ``refs``: the std codes the referential rules
    read (read here when not given)."""
    schema = std_arrow_schema(r.ds)
    out_schema = {**pl.Schema(schema), **RESOLUTION_COLUMNS}
    if filled.height == 0:
        return pl.DataFrame(schema=out_schema), {}
    if refs is None:
        refs = {f"{t}.uscc": lake.read("std", t, columns=["uscc"])["uscc"] for t in sorted(r.rules.references)}
    raw_cols = lake.scan("raw", r.id).collect_schema().names()
    first = conform(r.ds, r.rules, filled.select(raw_cols), refs, whole=False)
    competing, keyed = pl.DataFrame(), pl.DataFrame()
    std = lake.scan("std", r.id)
    if first.std is not None and first.std.height and std is not None:
        # the std rows with the keys of these records, and the raw rows they came from
        keyed = (
            std.select(*r.rules.key, "_source_file", "_row_number")
            .join(first.std.select(r.rules.key).unique().lazy(), on=r.rules.key, how="inner")
            .collect()
        )
        if keyed.height:
            competing = _rows_of(lake, "raw", r.id, keyed.select("_source_file", "_row_number"))
    batch = (
        pl.concat([filled.select(raw_cols), competing.select(raw_cols)])
        if competing.height
        else filled.select(raw_cols)
    )
    result = conform(r.ds, r.rules, batch, refs, whole=False)
    winners = result.std if result.std is not None else pl.DataFrame(schema=pl.Schema(schema))
    ours = filled.select("_source_file", "_row_number", "__method", "__confidence", "__name_filled")
    name_col = r.names[0]
    resolved = (
        winners.join(ours, on=["_source_file", "_row_number"], how="inner")
        .with_columns(pl.when(pl.col("__name_filled")).then(None).otherwise(pl.col(name_col)).alias(name_col))
        .drop("__name_filled")
    )
    notes: dict[tuple[str, int], str] = {}
    lost = ours.join(winners.select("_source_file", "_row_number"), on=["_source_file", "_row_number"], how="anti")
    failed = result.findings.filter(pl.col("action") == "quarantined") if result.findings.height else result.findings
    if lost.height:
        reasons = failed.group_by("source_file", "row_number").agg(
            pl.col("reason_zh").unique().sort().str.join("；").alias("why")
        )
        explained = lost.join(
            reasons.rename({"source_file": "_source_file", "row_number": "_row_number"}),
            on=["_source_file", "_row_number"],
            how="left",
        ).with_columns(pl.col("why").fill_null("同一主键已有更新的记录（被取代）"))
        notes = {(f, n): w for f, n, w in explained.select("_source_file", "_row_number", "why").iter_rows()}
    # the std row (same key) a resolved row takes the place of
    if competing.height and resolved.height:
        displaced = keyed.join(resolved.select(r.rules.key), on=r.rules.key, how="inner").select(
            *r.rules.key, pl.col("_source_file").alias("_displaces_file"), pl.col("_row_number").alias("_displaces_row")
        )
        resolved = resolved.join(displaced, on=r.rules.key, how="left")
    else:
        resolved = resolved.with_columns(
            pl.lit(None, pl.String).alias("_displaces_file"), pl.lit(None, pl.Int64).alias("_displaces_row")
        )
    resolved = resolved.rename({"__method": "_resolution_method", "__confidence": "_resolution_confidence"})
    if transform is not None and resolved.height:
        resolved = transform(resolved)
    return resolved.select(list(out_schema)).cast(out_schema), notes


def _print(frame: pl.DataFrame | None) -> str:
    """The content of a frame, whatever its row order ("0" when there is none): its rows' hashes, sorted, hashed.
    Polars' row hash is stable within a polars version; a new version changes every digest once, so each
    dataset is resolved again once — a digest only decides whether a result can be reused."""
    if frame is None or frame.height == 0:
        return "0"
    rows = frame.select(sorted(frame.columns)).hash_rows(seed=0).sort()
    return hashlib.sha256(str(sorted(frame.columns)).encode() + rows.to_numpy().tobytes()).hexdigest()


def inputs_digest(
    lake: Lake,
    r: Resolvable,
    names_print: str,
    keys: pl.DataFrame,
    findings: pl.DataFrame | None,
    decided: pl.DataFrame,
    salt: str,
) -> str:
    """What a dataset's matches and resolved rows are computed from: the names and keys std knows, the dataset's
    quarantine, the stewards' decisions about it (``decided``: ``decisions``), the std rows a resolved row may
    displace (the dataset's std version), the codes its referential rules read, and ``salt`` (the privacy key
    version). Equal digests, equal results: the run leaves the dataset alone."""
    errors = sorted({x.id for x in r.rules.rules if x.severity == "ERROR"})
    mine = (
        findings.filter((pl.col("dataset") == r.id) & pl.col("rule_id").is_in(errors)).select(
            "source_file", "row_number", "rule_id"
        )
        if findings is not None
        else None
    )

    def version(table: str) -> int | None:
        dt_ = lake.table("std", table)
        return dt_.version() if dt_ is not None else None

    parts = {
        "names": names_print,
        "keys": _print(keys.filter(pl.col("dataset") == r.id)),
        "quarantine": _print(mine),
        "decisions": _print(
            decided.filter(pl.col("dataset") == r.id).select("source_file", "row_number", "decision", "uscc")
        ),
        "std": version(r.id),
        "refs": {t: version(t) for t in sorted(r.rules.references)},
        "salt": salt,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def resolve(
    lake: Lake,
    transform_for: Callable[[Dataset], Callable[[pl.DataFrame], pl.DataFrame] | None] = lambda ds: None,
    at: dt.datetime | None = None,
    previous: dict[str, str] | None = None,
    salt: str = "",
) -> dict[str, dict]:
    """Match every identity-quarantined record, write ``ops/entity_matches`` (each dataset's partition) and
    ``ops/resolved_<dataset>`` — each only when its content changed; returns per dataset the records per
    status, the rows resolved, the versions written (own-table label → version) and the digest of its inputs
    (``inputs_digest``). ``previous``: the digests of the last run; a dataset whose inputs are the same is
    not computed again (``skipped``)."""
    at = at or dt.datetime.now(dt.UTC)
    items = resolvables()
    names, keys = known(lake, items)
    names_print = _print(names.drop("core", "body"))
    findings = findings_read(lake)
    decided = decisions(lake)
    recorded = lake.read(ENTITY_MATCHES.zone, ENTITY_MATCHES.name)
    references = sorted(set().union(*(r.rules.references for r in items)))
    refs = {f"{t}.uscc": lake.read("std", t, columns=["uscc"])["uscc"] for t in references}
    summary = {}
    # the registration first: its resolved rows name firms (and their former names) for the other datasets
    for r in sorted(items, key=lambda r: r.id != REGISTRATION):
        digest = inputs_digest(lake, r, names_print, keys, findings, decided, salt)
        if previous and previous.get(r.id) == digest and recorded is not None:
            mine = recorded.filter(pl.col("dataset") == r.id)
            summary[r.id] = {
                "statuses": dict(mine.group_by("status").len().iter_rows()),
                "resolved": lake.row_count(*resolved_table(r.id).path) or 0,
                "versions": {},
                "inputs": digest,
                "skipped": True,
            }
            if r.id == REGISTRATION:
                names = with_resolved_names(names, r, lake.read(*resolved_table(r.id).path))
                names_print = _print(names.drop("core", "body"))
            continue
        matches, filled = match(lake, r, names, keys, at, findings, decided)
        rows, notes = resolve_rows(lake, r, filled, transform_for(r.ds), refs)
        if matches.height:
            done = rows.select(
                pl.col("_source_file").alias("source_file"),
                pl.col("_row_number").alias("row_number"),
                pl.lit(True).alias("__done"),
            )
            why = pl.DataFrame(
                [{"source_file": f, "row_number": n, "__why": w} for (f, n), w in notes.items()],
                schema={"source_file": pl.String, "row_number": pl.Int64, "__why": pl.String},
            )
            matches = (
                matches.join(done, on=["source_file", "row_number"], how="left")
                .join(why, on=["source_file", "row_number"], how="left")
                .with_columns(
                    pl.col("__done").fill_null(False).alias("resolved"), pl.coalesce("__why", "note").alias("note")
                )
                .select(matches.columns)
            )
        versions = {}
        before = recorded.filter(pl.col("dataset") == r.id) if recorded is not None else None
        if before is None or not _same(before.drop("resolved_at"), matches.drop("resolved_at")):
            versions[ENTITY_MATCHES.label] = lake.replace_where(
                ENTITY_MATCHES.zone, ENTITY_MATCHES.name, matches.to_arrow().cast(MATCH_SCHEMA), "dataset", r.id
            )
        table = resolved_table(r.id)
        old = lake.read(table.zone, table.name)
        if old is None or not _same(old, rows):
            # the periods whose rows changed, for the incremental models (as a std build records them)
            changed = sorted(_changed_periods(r.ds, old, rows))
            versions[table.label] = lake.overwrite(
                table.zone, table.name, rows.to_arrow(), metadata={"partitions": json.dumps(changed)}
            )
        if r.id == REGISTRATION:
            names = with_resolved_names(names, r, rows)
            names_print = _print(names.drop("core", "body"))
        counts = matches.group_by("status").len()
        summary[r.id] = {
            "statuses": {s: n for s, n in counts.iter_rows()},
            "resolved": rows.height,
            "versions": versions,
            "inputs": digest,
            "skipped": False,
        }
    return summary


def _same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    if a.columns != b.columns or a.height != b.height:
        return False
    order = [c for c in a.columns if a.schema[c] != pl.Null]
    return a.sort(order, nulls_last=True).equals(b.sort(order, nulls_last=True))


def _periods(ds: Dataset, frame: pl.DataFrame) -> set[str]:
    """The periods the rows fall in, as std partitions the dataset (its period column's value)."""
    if frame.height == 0:
        return set()
    if ds.period is None or ds.period.column is None:
        return set(frame["_period"])
    value = period_text(ds, pl.col(ds.period.column))
    return set(frame.select(pl.coalesce(value, pl.lit(NO_PERIOD))).to_series())


def _changed_periods(ds: Dataset, old: pl.DataFrame | None, new: pl.DataFrame) -> set[str]:
    """Periods holding a row that is in one table and not the other."""
    if old is None:
        return _periods(ds, new)
    if old.columns != new.columns:
        return _periods(ds, old) | _periods(ds, new)
    cols = [c for c in new.columns if c not in ("_ingested_at",)]
    gone = old.select(cols).join(new.select(cols), on=cols, how="anti", nulls_equal=True)
    came = new.select(cols).join(old.select(cols), on=cols, how="anti", nulls_equal=True)
    return _periods(ds, gone) | _periods(ds, came)


def ensure(lake: Lake) -> None:
    """Create the resolution tables empty where they do not exist yet (the dbt sources read them)."""
    lake.ensure(ENTITY_MATCHES.zone, ENTITY_MATCHES.name, MATCH_SCHEMA, partition_by=["dataset"])
    lake.ensure(ENTITY_DECISIONS.zone, ENTITY_DECISIONS.name, DECISION_SCHEMA)
    for r in resolvables():
        table = resolved_table(r.id)
        schema = std_arrow_schema(r.ds)
        for name, dtype in RESOLUTION_COLUMNS.items():
            schema = schema.append(pa.field(name, ARROW_TYPES[dtype]))
        lake.ensure(table.zone, table.name, schema)


def decide(
    lake: Lake,
    audit: AuditLog,
    actor: str,
    dataset: str,
    source_file: str,
    row_number: int,
    decision: str,
    uscc: str | None,
    reason: str,
) -> int:
    """A steward's decision on a record awaiting resolution (or a correction of an earlier one): ``confirmed``
    with the enterprise's credit code, or ``rejected``; appended to ``ops/entity_match_decisions`` and to the
    privileged audit log. The next resolution run applies it. Returns the table version."""
    if decision not in ("confirmed", "rejected"):
        raise ResolutionError(f"decision must be confirmed or rejected, not {decision!r}")
    if not reason or not reason.strip():
        raise ResolutionError("a decision needs a reason (理由)")
    if decision == "confirmed" and (not uscc or not uscc_code.is_valid(uscc)):
        raise ResolutionError(f"{uscc!r} is not a valid 统一社会信用代码 (GB 32100)")
    m = lake.read(ENTITY_MATCHES.zone, ENTITY_MATCHES.name)
    at = (pl.col("dataset") == dataset) & (pl.col("source_file") == source_file) & (pl.col("row_number") == row_number)
    if m is None or m.filter(at).height == 0:
        raise ResolutionError(f"no record {dataset} {source_file} row {row_number} awaits resolution")
    row = {
        "dataset": dataset,
        "source_file": source_file,
        "row_number": row_number,
        "decision": decision,
        "uscc": uscc if decision == "confirmed" else None,
        "reason": reason.strip()[:300],
        "actor": actor,
        "decided_at": dt.datetime.now(dt.UTC),
    }
    ensure(lake)
    version = lake.append(ENTITY_DECISIONS.zone, ENTITY_DECISIONS.name, pa.Table.from_pylist([row], DECISION_SCHEMA))
    audit.append(
        f"entity.{decision}",
        actor=actor,
        dataset=dataset,
        source_file=source_file,
        row_number=row_number,
        uscc=row["uscc"],
        reason=row["reason"],
        delta_version=version,
    )
    return version
