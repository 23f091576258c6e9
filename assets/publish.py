"""Publication (共享库): every dbt model marked ``access: public`` becomes a versioned Delta table in the
publish zone, after a quality gate and a privacy gate that must both pass — validate, then write.

Downstream reads the Delta table (polars, DuckDB, deltalake), never the DuckDB file. Each version's commit
records the std versions it was built from and a content hash; publishing unchanged content writes no new
version, and a changed table (e.g. a corrected input, 异议) gets its row-level differences appended to
``publish/changes``: who (the key), which column, the old and the new value.
"""

import hashlib
import json

import dagster as dg
import polars as pl

from orchestration.dbt.assets import FAILED_TESTS, GRADES, SOURCE_VERSIONS
from orchestration.dbt.project import Translator, column_meta, is_public, manifest, model_meta, project
from orchestration.resources import WAREHOUSE_POOL, LakeResource, WarehouseResource
from privacy import gate as privacy_gate
from privacy.grading import Grading

CHANGES = "changes"


def publish_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["publish", name])


def content_hash(frame: pl.DataFrame, key: list[str]) -> str:
    ordered = frame.sort(key or frame.columns, nulls_last=True)
    return hashlib.sha256(ordered.write_csv(float_precision=12).encode("utf-8")).hexdigest()


def _text(e: pl.Expr) -> pl.Expr:
    return e.cast(pl.String)


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
                _text(before).alias("old"),
                _text(after).alias("new"),
            )
        )
    if not parts:
        return pl.DataFrame(schema={"key": pl.String, "column": pl.String, "old": pl.String, "new": pl.String})
    return pl.concat(parts).sort("key", "column")


def _markdown(diff: pl.DataFrame, limit: int = 50) -> str:
    lines = ["| key | column | old | new |", "|---|---|---|---|"]
    for r in diff.head(limit).iter_rows(named=True):
        lines.append(f"| {r['key']} | {r['column']} | {r['old']} | {r['new']} |")
    if diff.height > limit:
        lines.append(f"| … {diff.height - limit} more | | | |")
    return "\n".join(lines)


def _last_commit(table) -> dict:
    for entry in table.history(1):
        return entry
    return {}


def _publish_asset(props: dict, translator: Translator) -> dg.AssetsDefinition:
    name = props["name"]
    model_key = translator.get_asset_key(props)
    key = publish_key(name)
    meta = model_meta(props)
    order = list(meta.get("key") or [])
    quasi = [c for c in props.get("columns", {}) if column_meta(props, c).get("role") == "quasi"]
    # schema and alias, not relation_name: the catalog part is the warehouse file's name when the manifest
    # was prepared, which need not be the file this run writes
    relation = f'"{props["schema"]}"."{props["alias"]}"'
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c,
                type=spec.get("data_type") or "unknown",
                description=spec.get("description") or None,
                tags={"classification": column_meta(props, c).get("classification", "unclassified")},
            )
            for c, spec in props.get("columns", {}).items()
        ]
    )

    @dg.asset(
        key=key,
        deps=[model_key],
        description=f"**{meta.get('name_zh', name)}** ({meta.get('name_en', '')}) — 共享库 publish zone: "
        f"`{name}` as a versioned Delta table, published only when its quality and privacy gates pass.",
        group_name="publish",
        kinds={"delta", "polars"},
        owners=[meta["owner"]] if meta.get("owner") else None,
        tags={"zone": "publish", "access": "public"},
        pool=WAREHOUSE_POOL,
        metadata={"dagster/column_schema": schema, "dagster/table_name": f"publish.{name}", "dbt_model": relation},
        check_specs=[
            dg.AssetCheckSpec(
                "quality_gate",
                asset=key,
                blocking=True,
                description="the model's dbt tests and contract passed in its last build; key unique; not empty",
            ),
            dg.AssetCheckSpec(
                "privacy_gate",
                asset=key,
                blocking=True,
                description="no valid resident ID or mobile; no direct identifier; nothing above L2 untransformed; "
                "k-anonymity on the declared quasi-identifiers",
            ),
        ],
    )
    def publish(context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource):
        event = context.instance.get_latest_materialization_event(model_key)
        if event is None:
            raise dg.Failure(f"{model_key.to_user_string()} has never been built; nothing to publish")
        built = event.asset_materialization.metadata
        grades = built[GRADES].value if GRADES in built else {}
        failed = built[FAILED_TESTS].value if FAILED_TESTS in built else []
        versions = built[SOURCE_VERSIONS].value if SOURCE_VERSIONS in built else {}
        con = warehouse.connect(read_only=True)
        try:
            frame = con.sql(f"select * from {relation}").pl()
        finally:
            con.close()

        quality = [f"dbt test failed: {t}" for t in failed]
        if frame.height == 0:
            quality.append("the model is empty")
        if order and frame.height and frame.select(order).is_duplicated().any():
            quality.append(f"key {order} is not unique")
        missing = sorted(set(props.get("columns", {})) - set(frame.columns))
        if missing:
            quality.append(f"declared columns missing: {missing}")
        ungraded = sorted(set(frame.columns) - set(grades))
        gradings = {
            c: Grading(column_meta(props, c).get("classification") or "metadata", g["level"], g["role"])
            for c, g in grades.items()
        }
        transformed = {c: g["transform"] for c, g in grades.items() if g.get("transform")}
        problems = [f"{p.rule}: {p.detail}" for p in privacy_gate.check(frame, gradings, transformed, quasi)]
        problems += [f"grade: {c} has no propagated grade" for c in ungraded]
        yield dg.AssetCheckResult(
            check_name="quality_gate",
            passed=not quality,
            metadata={"problems": "; ".join(quality) or "none", "rows": frame.height},
        )
        yield dg.AssetCheckResult(
            check_name="privacy_gate",
            passed=not problems,
            metadata={
                "problems": "; ".join(problems) or "none",
                "quasi_identifiers": ", ".join(quasi) or "none",
                "highest_level": max((g["level"] for g in grades.values()), default="L1"),
            },
        )
        if quality or problems:
            raise dg.Failure(
                description=f"publish/{name} not published — "
                + "; ".join(quality + problems)
                + ". The publish zone keeps its previous version."
            )

        the_lake = lake.lake()
        digest = content_hash(frame, order)
        current = the_lake.table("publish", name)
        if current is not None and _last_commit(current).get("content_sha256") == digest:
            context.log.info(f"publish/{name}: content unchanged, stays at version {current.version()}")
            yield dg.MaterializeResult(
                metadata={"delta_version": current.version(), "unchanged": True, "dagster/row_count": frame.height}
            )
            return
        previous = pl.from_arrow(current.to_pyarrow_table()) if current is not None else None
        commit = {
            "content_sha256": digest,
            SOURCE_VERSIONS: json.dumps(versions, sort_keys=True),
            "dbt_model": props["unique_id"],
            "run_id": context.run.run_id,
        }
        version = the_lake.overwrite("publish", name, frame.sort(order or frame.columns).to_arrow(), metadata=commit)
        extra = {}
        if previous is not None and order:
            diff = changes(previous, frame, order)
            if diff.height:
                log = diff.select(
                    pl.lit(name).alias("dataset"),
                    pl.lit(version - 1, pl.Int64).alias("from_version"),
                    pl.lit(version, pl.Int64).alias("to_version"),
                    pl.all(),
                    pl.lit(context.run.run_id).alias("run_id"),
                )
                the_lake.append("publish", CHANGES, log.to_arrow())
            extra = {"changed_values": diff.height, "changes": dg.MetadataValue.md(_markdown(diff))}
        yield dg.MaterializeResult(
            metadata={
                "delta_version": version,
                "delta_uri": dg.MetadataValue.path(the_lake.uri("publish", name)),
                "dagster/row_count": frame.height,
                "rows_written": frame.height,
                "content_sha256": digest,
                SOURCE_VERSIONS: versions,
                "dagster/column_lineage": dg.TableColumnLineage(
                    deps_by_column={c: [dg.TableColumnDep(asset_key=model_key, column_name=c)] for c in frame.columns}
                ),
                GRADES: grades,
                **extra,
            }
        )

    return publish


def build() -> list[dg.AssetsDefinition]:
    translator = Translator()
    the_manifest = manifest(project())
    return [_publish_asset(p, translator) for p in the_manifest["nodes"].values() if is_public(p)]
