"""How a Python asset states its column lineage (shown in the UI and emitted as OpenLineage).

``declared`` for explicit mappings; ``by_name`` infers output ← upstream for columns that keep their
name, and only those: a renamed or computed column must be declared, or it is reported as unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg


def declared(mapping: Mapping[str, Iterable[tuple[dg.AssetKey, str]]]) -> dg.TableColumnLineage:
    return dg.TableColumnLineage(
        deps_by_column={
            out: [dg.TableColumnDep(asset_key=k, column_name=c) for k, c in sources] for out, sources in mapping.items()
        }
    )


def by_name(
    upstream: dg.AssetKey, upstream_columns: Iterable[str], output_columns: Iterable[str]
) -> dg.TableColumnLineage:
    have = set(upstream_columns)
    return declared({c: [(upstream, c)] for c in output_columns if c in have})


def transformations(spec: Mapping[str, tuple]) -> dict:
    """Metadata value for ``shucang/column_transformations``: column → (type, subtype, description[, masking])."""
    return {
        c: {"type": t[0], "subtype": t[1], "description": t[2], "masking": bool(t[3]) if len(t) > 3 else False}
        for c, t in spec.items()
    }
