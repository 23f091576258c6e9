"""Impact analysis from emitted lineage: where a column comes from, and what depends on it.

Reads the events (not the code), so it answers for whatever actually ran. The latest COMPLETE event
of each dataset defines its lineage. A column with no declared origin is reported as unknown; a
dataset that depends on a table without column lineage is reported as a whole-table dependency.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

Column = tuple[str, str, str]  # (namespace, name, field)
Table = tuple[str, str]


@dataclass
class LineageGraph:
    column_parents: dict[Column, list[tuple[Column, str]]] = field(default_factory=lambda: defaultdict(list))
    column_children: dict[Column, list[tuple[Column, str]]] = field(default_factory=lambda: defaultdict(list))
    table_parents: dict[Table, set[Table]] = field(default_factory=lambda: defaultdict(set))
    table_children: dict[Table, set[Table]] = field(default_factory=lambda: defaultdict(set))
    with_column_lineage: set[Table] = field(default_factory=set)
    unknown: dict[Table, set[str]] = field(default_factory=dict)
    files: dict[Table, str] = field(default_factory=dict)  # tables loaded from a project file (dbt seeds)
    masked: set[tuple[Column, Column]] = field(default_factory=set)  # (column, parent): a privacy transform

    @classmethod
    def from_events(cls, events: list[dict]) -> LineageGraph:
        latest: dict[Table, dict] = {}
        for e in sorted((e for e in events if e.get("eventType") == "COMPLETE"), key=lambda e: e["eventTime"]):
            for out in e.get("outputs") or []:
                latest[(out["namespace"], out["name"])] = {"event": e, "output": out}
        g = cls()
        for table, item in latest.items():
            for inp in item["event"].get("inputs") or []:
                g.table_parents[table].add((inp["namespace"], inp["name"]))
                g.table_children[(inp["namespace"], inp["name"])].add(table)
            facets = item["output"].get("facets") or {}
            fields = (facets.get("columnLineage") or {}).get("fields") or {}
            if fields:
                g.with_column_lineage.add(table)
            for col, spec in fields.items():
                for src in spec.get("inputFields") or []:
                    how = "/".join(t.get("subtype") or t.get("type", "") for t in src.get("transformations") or [])
                    parent = (src["namespace"], src["name"], src["field"])
                    if any(t.get("masking") for t in src.get("transformations") or []):
                        g.masked.add(((*table, col), parent))
                    g.column_parents[(*table, col)].append((parent, how))
                    g.column_children[parent].append(((*table, col), how))
            g.unknown[table] = set((facets.get("shucang_columnLineageCoverage") or {}).get("unknownOrigin") or [])
            if path := (facets.get("shucang_sourceFile") or {}).get("path"):
                g.files[table] = path
        return g

    def upstream(self, column: Column) -> list[tuple[int, Column, str]]:
        """Depth-first origin chain: (depth, column, how it was derived); ends say 'source' or 'unknown'."""
        out: list[tuple[int, Column, str]] = []

        def walk(c: Column, depth: int, how: str, seen: frozenset) -> None:
            parents = self.column_parents.get(c, [])
            if not parents:
                table = c[:2]
                if table in self.files:
                    status = f"source: file {self.files[table]}"
                elif table not in self.latest_outputs:
                    status = "source"
                else:
                    status = "origin unknown"
                out.append((depth, c, f"{how} · {status}" if how else status))
                return
            out.append((depth, c, how))
            for parent, h in parents:
                if parent not in seen:
                    walk(parent, depth + 1, h, seen | {parent})

        walk(column, 0, "", frozenset({column}))
        return out

    @property
    def latest_outputs(self) -> set[Table]:
        return set(self.table_parents) | self.with_column_lineage | set(self.unknown)

    def downstream(self, column: Column) -> tuple[list[tuple[Column, str]], list[Table]]:
        """Every column that depends on ``column`` (transitively), and tables that depend on a table on
        that path without column lineage (their dependency is on the whole table)."""
        columns: list[tuple[Column, str]] = []
        tables: set[Table] = set()
        todo, seen = [column], {column}
        while todo:
            c = todo.pop()
            for child, how in self.column_children.get(c, []):
                if child not in seen:
                    seen.add(child)
                    columns.append((child, how))
                    todo.append(child)
            for table in self.table_children.get(c[:2], set()):
                if table not in self.with_column_lineage:
                    tables.add(table)
        return sorted(columns), sorted(tables)
