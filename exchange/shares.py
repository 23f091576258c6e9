"""Shares (交换区): the per-request extract of an approved data request.

For each dataset asked for: the publish-zone table at the version pinned when the request was approved,
the consumer's privacy policy applied column by column, the rows in scope of what it releases, the columns
granted, then the
privacy gate (no identifiers, nothing above L2 untransformed, k-anonymity on the quasi-identifiers). Only a
share that passes is written, as Delta tables under ``share/<request>/<dataset>``, with a manifest holding
the content hash of every delivered file so the consumer can check what it received. Built from the same
pinned versions, a share is byte-identical.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from exchange.requests import catalogue_index, policy
from lakehouse.lake import Lake
from privacy import gate, transforms
from privacy.audit import load_chain_key
from privacy.dp import Budget, noisy_counts
from privacy.grading import Grading


class ShareRefused(RuntimeError):
    """The share does not pass its gate: nothing was written."""


def column_transform(kind: str, level: str, role: str) -> str:
    rule = policy()["consumer_policies"][kind][level]
    return rule if isinstance(rule, str) else rule.get(role, rule.get("none", "suppress"))


def _significant(e: pl.Expr, digits: int = 2) -> pl.Expr:
    """Round to ``digits`` significant digits (0 stays 0)."""
    step = pl.lit(10.0).pow(e.abs().log10().floor() - (digits - 1))  # 7,150,590.5 → step 100,000
    return pl.when(e == 0).then(e).otherwise((e / step).round(0) * step)


def _generalise(name: str, dtype: pl.DataType) -> tuple[pl.Expr, str]:
    c = pl.col(name)
    if dtype.is_numeric():
        return _significant(c.cast(pl.Float64)).alias(name), "generalised"
    if dtype in (pl.Date, pl.Datetime):
        return c.dt.truncate("1y").alias(name), "generalised"
    if name.endswith("region_code"):
        return transforms.region_prefix(c, "city").alias(name), "generalised"
    if name.endswith("industry_code"):
        return c.str.slice(0, 3).alias(name), "generalised"
    if name == "address" or name.endswith("_address"):
        return transforms.district(c).alias(name), "generalised"
    if dtype == pl.String:
        return transforms.mask(c, 1, 0).alias(name), "masked"
    return transforms.suppress(c).alias(name), "suppressed"


def apply_policy(frame: pl.DataFrame, columns: dict[str, dict], kind: str) -> tuple[pl.DataFrame, dict[str, str]]:
    """The consumer's privacy policy applied to every column; returns the frame and what each column got."""
    exprs, applied = [], {}
    for name in frame.columns:
        meta = columns[name]
        level = meta.get("effective_grade") or meta["grade"]
        if level not in policy()["consumer_policies"][kind]:
            raise ShareRefused(f"column {name!r} has no known grade ({level!r}) in the catalogue: {meta}")
        how = column_transform(kind, level, meta.get("role") or "none")
        dtype = frame.schema[name]
        if how == "keep":
            exprs.append(pl.col(name))
            continue
        if how == "round" and not dtype.is_numeric():
            how = "suppress"
        if how == "round":
            exprs.append(_significant(pl.col(name).cast(pl.Float64)).alias(name))
            applied[name] = "generalised"
        elif how == "generalise":
            expr, applied[name] = _generalise(name, dtype)
            exprs.append(expr)
        elif how == "suppress":
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
            applied[name] = "suppressed"
        else:
            raise ValueError(f"exchange/policy.yaml: unknown transform {how!r} for {name}")
    return frame.select(exprs), applied


def scope(frame: pl.DataFrame, rows) -> pl.DataFrame:
    for r in rows:
        c = pl.col(r["column"]).cast(pl.String)
        frame = frame.filter(c.str.starts_with(r["prefix"]) if "prefix" in r else c.is_in(r["in"]))
    return frame


def add_actions(table: DeltaTable) -> list[dict]:
    """The current version's data files (path, size_bytes, num_records, …), sorted by path."""
    return sorted(pa.table(table.get_add_actions(flatten=True)).to_pylist(), key=lambda a: a["path"])


def file_entries(lake: Lake, zone: str, name: str) -> list[dict]:
    """The data files of a table's current version with their sizes, row counts and SHA-256."""
    out = []
    for a in add_actions(lake.table(zone, name)):
        out.append(
            {
                "path": a["path"],
                "size": int(a["size_bytes"]),
                "rows": int(a["num_records"]),
                "sha256": hashlib.sha256(lake.read_bytes(zone, f"{name}/{a['path']}") or b"").hexdigest(),
            }
        )
    return out


# a share table records its changes (Delta change data feed): the /changes endpoint serves them
SHARE_TABLE_PROPERTIES = {"delta.enableChangeDataFeed": "true"}


def share_table_name(request_id: str, dataset: str) -> str:
    return f"{request_id}/{dataset}"


def _dp_columns(entry: dict, consumer: dict, columns: list[str]) -> list[str]:
    """The counts of a de-identified aggregate that a consumer not entitled to named firms gets noised."""
    if entry.get("disclosure") != "deidentified" or consumer.get("named_firms"):
        return []
    counts = entry.get("small_cell_count") or []
    counts = [c.strip() for c in counts.split(",")] if isinstance(counts, str) else counts
    return [c for c in counts if c in columns]


def _seed(key: bytes, *parts) -> int:
    """A release's noise seed: secret (keyed), and the same for the same request, dataset and pin."""
    return int.from_bytes(hmac.new(key, "/".join(map(str, parts)).encode(), hashlib.sha256).digest()[:16], "big")


def build(lake: Lake, state, catalogue: dict, k: int | None = None, budget: Budget | None = None) -> dict:
    """Build the share of an approved request; returns its manifest. ShareRefused: nothing written.

    A de-identified aggregate shared with a consumer not entitled to named firms releases its counts with
    Laplace noise (ε from ``exchange/policy.yaml``), spent from ``budget`` (per consumer and dataset)."""
    published = catalogue_index(catalogue)
    request = state.request
    kind = request["consumer"]["kind"]
    frames, manifest_tables = {}, []
    noised: list[tuple[str, list[str]]] = []
    for ask in request["datasets"]:
        name, version = ask["dataset"], state.pins[ask["dataset"]]
        source = lake.table("publish", name)
        if source is None:
            raise ShareRefused(f"{name}: no publish table in {lake.root}")
        source.load_as_version(version)
        meta = {c["column"]: c for c in published[name]["columns"]}
        needed = list(dict.fromkeys([*ask["columns"], *(r["column"] for r in ask["rows"])]))
        full = pl.from_arrow(source.to_pyarrow_table(columns=needed))
        # the row scope filters what the consumer's policy releases, never the values it hides or rounds
        released, applied = apply_policy(full, meta, kind)
        in_scope = scope(released, ask["rows"])
        shared = in_scope.select(ask["columns"])
        applied = {c: how for c, how in applied.items() if c in ask["columns"]}
        gradings = {
            c: Grading(
                meta[c]["classification"] or "metadata",
                meta[c].get("effective_grade") or meta[c]["grade"],
                meta[c].get("role") or "none",
            )
            for c in shared.columns
        }
        quasi = [c for c in shared.columns if meta[c].get("role") == "quasi"]
        problems = gate.check(shared, gradings, applied, quasi, k)
        if problems:
            raise ShareRefused(f"{name}: " + "; ".join(f"{p.rule}: {p.detail}" for p in problems))
        frames[name] = shared
        dp_columns = _dp_columns(published[name], request["consumer"], shared.columns)
        if dp_columns:
            noised.append((name, dp_columns))
        manifest_tables.append(
            {
                "dataset": name,
                "source_version": version,
                "source_rows": full.height,
                "rows": shared.height,
                "rows_out_of_scope": full.height - in_scope.height,
                "columns": shared.columns,
                "row_scope": ask["rows"],
                "transforms": applied,
            }
        )
    if noised:  # every table passed: spend the privacy budget (all or nothing), then noise the counts
        if budget is None:
            raise ShareRefused(f"{[n for n, _ in noised]}: de-identified counts need a privacy budget to be released")
        epsilon = float(policy()["dp"]["epsilon_per_share"])
        who = request["consumer"].get("id", request["consumer"]["name"])
        over = [n for n, _ in noised if budget.spent(f"{who}/{n}") + epsilon > budget.total + 1e-12]
        if over:
            raise ShareRefused(f"{over}: the privacy budget of {who} for these datasets is spent ({budget.total} ε)")
        key = load_chain_key()
        by_name = {t["dataset"]: t for t in manifest_tables}
        for name, columns in noised:
            budget.spend(f"{who}/{name}", epsilon)
            seed = _seed(key, state.id, name, state.pins[name])
            frames[name] = frames[name].with_columns(
                noisy_counts(frames[name][c], epsilon, seed + i) for i, c in enumerate(columns)
            )
            by_name[name]["dp"] = {"mechanism": "laplace", "sensitivity": 1, "epsilon": epsilon, "columns": columns}
    # every table passed: write them all
    for entry in manifest_tables:
        name = entry["dataset"]
        table_name = share_table_name(state.id, name)
        # sorted (first column, usually the credit code) and in files of at most share_file_rows rows, so a
        # consumer's predicate and limit hints prune files by their statistics
        frame = frames[name].sort(frames[name].columns[0], nulls_last=True)
        per_file = int(policy()["share_file_rows"])
        meta = {"request_id": state.id, "source_version": str(entry["source_version"])}
        entry["build_version"] = lake.overwrite(
            "share", table_name, frame.head(per_file).to_arrow(), metadata=meta, configuration=SHARE_TABLE_PROPERTIES
        )
        for start in range(per_file, frame.height, per_file):
            lake.append("share", table_name, frame.slice(start, per_file).to_arrow(), metadata=meta)
        # the files of earlier builds (another policy, another pin) are deleted: only this build is readable
        table = lake.table("share", table_name)
        table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        entry["share_version"] = lake.table("share", table_name).version()  # vacuum commits too
        entry["files"] = file_entries(lake, "share", table_name)
        entry["content_sha256"] = hashlib.sha256("".join(f["sha256"] for f in entry["files"]).encode()).hexdigest()
    return {"request_id": state.id, "consumer": request["consumer"], "tables": manifest_tables}


def write_manifest(lake: Lake, manifest: dict) -> str:
    body = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    return lake.write_bytes("share", f"{manifest['request_id']}/manifest.json", body)
