"""The warehouse's own tables as assets: the quarantine, the score history, the collection log, the change
log of the publish zone (``lakehouse.tables``).

Each is written by the steps of a stage — every std step replaces its dataset's partition of
``quarantine/findings`` — so none is materialised by a step of its own: each is an asset whose upstream
is the assets whose steps write it, and each write reports a materialisation of it (version, rows, for
which dataset). The UI, the catalogue and lineage see them like any other table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import dagster as dg

from lakehouse.tables import BY_LABEL, OWN_TABLES, OwnTable
from orchestration import keys


def key(table: OwnTable) -> dg.AssetKey:
    return keys.key(*table.path)


def specs(writers: Mapping[str, Iterable[dg.AssetKey]], steward: str) -> list[dg.AssetSpec]:
    """One spec per own table; ``writers``: stage (asset group) → the keys of the assets in it."""
    return [
        dg.AssetSpec(
            key(t),
            deps=sorted({k for stage in t.written_by for k in writers.get(stage, ())}, key=lambda k: k.path),
            description=f"**{t.name_zh}** ({t.name_en}) — {t.description}\n\nWritten by "
            + " and ".join("the steward's commands" if s == "steward" else f"the {s} steps" for s in t.written_by)
            + "; each write is reported here.",
            group_name=t.zone,
            kinds={"delta"},
            owners=[steward],
            tags={"zone": t.zone, "own_table": "true"},
            metadata={
                "dagster/table_name": f"{t.zone}.{t.name}",
                **({"partitioned_by": t.partitioned_by} if t.partitioned_by else {}),
            },
        )
        for t in OWN_TABLES
        if not t.own_step
    ]


def own_table_reports(
    versions: Mapping[str, int], rows: Mapping[str, int], **context: str
) -> Iterator[dg.AssetMaterialization]:
    """A materialisation of each own table a step wrote (label → version), with what it wrote."""
    for label, version in sorted(versions.items()):
        yield dg.AssetMaterialization(
            asset_key=key(BY_LABEL[label]),
            metadata={"delta_version": version, "rows_written": rows.get(label, 0), **context},
        )


def report_write(s, table: OwnTable, version: int, **metadata: str) -> bool:
    """A write made outside a Dagster run (a steward's command, the console) is reported to the Dagster
    instance of ``s.dagster_home`` as a materialisation of the own table, so the asset shows it like any other
    and the automation follows it downstream; False when that home has no instance. The home's dagster.yaml is
    read as it is — the local instance or the deployment's PostgreSQL one — never rewritten. ``s``: Settings."""
    if not (s.dagster_home / "dagster.yaml").is_file():
        return False
    with dg.DagsterInstance.from_config(str(s.dagster_home)) as dagster_instance:
        dagster_instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=key(table), metadata={"delta_version": version, **metadata})
        )
    return True
