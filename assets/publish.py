"""Publication (共享库): every dbt model marked ``access: public`` becomes a versioned Delta table in the
publish zone, after a quality gate and a privacy gate that must both pass (``exchange.publication``).

Downstream reads the Delta table (polars, DuckDB, deltalake), never the DuckDB file. An asset here loads
the model's rows and what its dbt build recorded (grades, failed tests, pinned inputs), calls the engine,
and reports the gates as blocking checks and the outcome as metadata.
"""

import json

import dagster as dg
import polars as pl

from assets import freshness
from assets.own_tables import own_table_reports
from exchange import publication
from exchange.publication import Model, check_gates
from lakehouse.tables import CHANGES
from orchestration import keys
from orchestration.automation import follows_inputs
from orchestration.dbt.assets import FAILED_TESTS, GRADES, SOURCE_VERSIONS
from orchestration.dbt.project import Translator, column_meta, is_public, manifest, model_key, model_meta, project
from orchestration.metadata import console_link, grades_of, grades_table, tests_of, versions_of, versions_table
from orchestration.resources import WAREHOUSE_POOL, LakeResource, WarehouseResource
from privacy import gate as privacy_gate


def publish_key(name: str) -> dg.AssetKey:
    return keys.key("publish", name)


def _markdown(diff: pl.DataFrame, limit: int = 50) -> str:
    lines = ["| key | column | old | new |", "|---|---|---|---|"]
    for r in diff.head(limit).iter_rows(named=True):
        lines.append(f"| {r['key']} | {r['column']} | {r['old']} | {r['new']} |")
    if diff.height > limit:
        lines.append(f"| … {diff.height - limit} more | | | |")
    return "\n".join(lines)


def _publish_asset(props: dict, the_manifest: dict, translator: Translator) -> dg.AssetsDefinition:
    name = props["name"]
    model_asset = translator.get_asset_key(props)
    key = publish_key(name)
    meta = model_meta(props)
    declared = props.get("columns", {})
    model = Model(
        name=name,
        key=model_key(the_manifest, props),
        columns=list(declared),
        quasi=[c for c in declared if column_meta(props, c).get("role") == "quasi"],
        classification={c: column_meta(props, c).get("classification") for c in declared},
        disclosure=meta.get("disclosure"),
        period=meta.get("period_column"),
        small_cell_count=[meta["small_cell_count"]]
        if isinstance(meta.get("small_cell_count"), str)
        else list(meta.get("small_cell_count") or []),
    )
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
        deps=[model_asset],
        description=f"**{meta.get('name_zh', name)}** ({meta.get('name_en', '')}) — 共享库 publish zone: "
        f"`{name}` as a versioned Delta table, published only when its quality and privacy gates pass.",
        group_name="publish",
        kinds={"delta", "polars"},
        # a model without an update cycle has no freshness to keep (the catalogue shows the gap)
        freshness_policy=freshness.policy(meta["update_cycle"], f"dbt model {name}: ")
        if meta.get("update_cycle")
        else None,
        owners=[meta["owner"]] if meta.get("owner") else None,
        tags={"zone": "publish", "access": "public"},
        pool=WAREHOUSE_POOL,
        automation_condition=follows_inputs(),
        metadata={
            "dagster/column_schema": schema,
            "dagster/table_name": f"publish.{name}",
            "dbt_model": relation,
            "steward_console": console_link("publish", name),
        },
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
                "disclosure declared (identified, or deidentified with k-anonymity on the declared "
                "quasi-identifiers and small cells suppressed)",
            ),
        ],
    )
    def publish(context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource):
        event = context.instance.get_latest_materialization_event(model_asset)
        if event is None:
            raise dg.Failure(f"{model_asset.to_user_string()} has never been built; nothing to publish")
        built = event.asset_materialization.metadata
        grades = grades_of(built.get(GRADES))
        failed = tests_of(built.get(FAILED_TESTS))
        versions = versions_of(built.get(SOURCE_VERSIONS))
        k = privacy_gate.k()
        # what the latest materialisation tells its readers (the catalogue's grades, the versions read) holds
        # for an unchanged publication too: the grades may have moved while the content did not
        same = {SOURCE_VERSIONS: versions_table(versions), GRADES: grades_table(grades)}
        the_lake = lake.lake()
        con = warehouse.connect(read_only=True)
        try:
            # what changed since the published version, from fingerprints computed in the warehouse: only
            # those periods are read, gated and replaced (all of them when the gates' basis changed)
            types = {c: t for c, t, *_ in con.execute(f"describe {relation}").fetchall()}
            basis = publication.gate_basis(model, grades, failed, types, k)
            prints = publication.fingerprints(con, relation, model)
            loaded = publication.to_load(the_lake, model, prints, basis)
            rows = publication.rows(prints)
            if loaded == []:
                version = the_lake.table("publish", name).version()
                context.log.info(f"publish/{name}: the model is unchanged since version {version}; nothing read")
                for check in ("quality_gate", "privacy_gate"):
                    yield dg.AssetCheckResult(
                        check_name=check,
                        passed=True,
                        metadata={"problems": "none", "rows": rows, "unchanged_since_version": version},
                    )
                yield dg.MaterializeResult(
                    data_version=dg.DataVersion(str(version)),
                    metadata={"delta_version": version, "unchanged": True, "dagster/row_count": rows, **same},
                )
                return
            if loaded is not None:
                context.log.info(f"publish/{name}: {len(loaded)} period(s) changed: {', '.join(loaded)}")
            frame = publication.load(con, relation, model, loaded)
        finally:
            con.close()

        frame, suppressed = publication.suppress_small_cells(frame, model, k)
        if suppressed:
            context.log.info(f"publish/{name}: {suppressed} cell(s) of fewer than {k} firms suppressed")
        gates = check_gates(frame, model, grades, failed, rows)
        yield dg.AssetCheckResult(
            check_name="quality_gate",
            passed=not gates.quality,
            metadata={"problems": "; ".join(gates.quality) or "none", "rows": rows, "rows_checked": frame.height},
        )
        yield dg.AssetCheckResult(
            check_name="privacy_gate",
            passed=not gates.privacy,
            metadata={
                "problems": "; ".join(gates.privacy) or "none",
                "quasi_identifiers": ", ".join(model.quasi) or "none",
                "disclosure": str(model.disclosure),
                "small_cells_suppressed": suppressed,
                "highest_level": gates.highest_level,
            },
        )
        if not gates.passed:
            raise dg.Failure(
                description=f"publish/{name} not published — "
                + "; ".join(gates.quality + gates.privacy)
                + ". The publish zone keeps its previous version."
            )

        commit = {
            SOURCE_VERSIONS: json.dumps(versions, sort_keys=True),
            "dbt_model": props["unique_id"],
            "run_id": context.run.run_id,
            "fingerprints": json.dumps(prints, sort_keys=True),
            "gate_basis": basis,
        }
        done = publication.publish(the_lake, model, frame, commit, context.run.run_id, loaded)
        publication.record(the_lake, name, done.version, basis, prints)
        if done.unchanged:
            context.log.info(f"publish/{name}: content unchanged, stays at version {done.version}")
            yield dg.MaterializeResult(
                data_version=dg.DataVersion(str(done.version)),
                metadata={"delta_version": done.version, "unchanged": True, "dagster/row_count": rows, **same},
            )
            return
        version, extra = done.version, {}
        if done.changes_version is not None:
            yield from own_table_reports(
                {CHANGES.label: done.changes_version}, {CHANGES.label: done.changes.height}, dataset=name
            )
        if model.key and version > 0:
            extra = {"changed_values": done.changes.height, "changes": dg.MetadataValue.md(_markdown(done.changes))}
        yield dg.MaterializeResult(
            data_version=dg.DataVersion(str(version)),
            metadata={
                "delta_version": version,
                "delta_uri": dg.MetadataValue.path(the_lake.uri("publish", name)),
                "dagster/row_count": rows,
                "rows_written": done.written,
                "periods_replaced": ", ".join(done.periods) if done.periods is not None else "all",
                "content_sha256": done.content_sha256,
                SOURCE_VERSIONS: versions_table(versions),
                "dagster/column_lineage": dg.TableColumnLineage(
                    deps_by_column={c: [dg.TableColumnDep(asset_key=model_asset, column_name=c)] for c in frame.columns}
                ),
                GRADES: grades_table(grades),
                **extra,
            },
        )

    return publish


def cycles() -> list[tuple[dg.AssetKey, str]]:
    """(publish key, update cycle) of every public model."""
    the_manifest = manifest(project())
    return [
        (publish_key(p["name"]), model_meta(p)["update_cycle"])
        for p in the_manifest["nodes"].values()
        if is_public(p) and model_meta(p).get("update_cycle")
    ]


def build() -> list[dg.AssetsDefinition]:
    translator = Translator()
    the_manifest = manifest(project())
    return [_publish_asset(p, the_manifest, translator) for p in the_manifest["nodes"].values() if is_public(p)]
