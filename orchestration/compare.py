"""Two lakes' published tables, compared by content: the live demo's against the file demo's (their sources
differ, their publications must not), or any two runs that should agree.

Rows are compared as sets of whole rows (every column, nulls equal to nulls), after the columns are put in one
order; a difference reports how many rows each side holds that the other does not, and a few of them.
``sharing_statistics`` is left out: it counts the exchange's own activity (requests, reads), not the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from lakehouse.lake import Lake

NOT_DATA = {"sharing_statistics"}


@dataclass
class TableComparison:
    name: str
    rows: tuple[int | None, int | None]
    only_left: int = 0
    only_right: int = 0
    problem: str | None = None
    examples: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return self.problem is None and self.only_left == 0 and self.only_right == 0


@dataclass
class Comparison:
    left: str
    right: str
    tables: list[TableComparison]

    @property
    def equal(self) -> bool:
        return bool(self.tables) and all(t.equal for t in self.tables)

    def lines(self) -> list[str]:
        same = sum(t.equal for t in self.tables)
        out = [f"published tables, {self.right} against {self.left}: {same} of {len(self.tables)} equal"]
        for t in self.tables:
            if t.equal:
                out.append(f"  = {t.name}: {t.rows[0]:,} rows, equal")
            elif t.problem:
                out.append(f"  ≠ {t.name}: {t.problem}")
            else:
                out.append(
                    f"  ≠ {t.name}: {t.rows[0]:,} / {t.rows[1]:,} rows; {t.only_left} only in the first, "
                    f"{t.only_right} only in the second"
                )
                out += [f"      {e}" for e in t.examples]
        return out


def _names(lake: Lake) -> set[str]:
    return {n for n in lake.table_names("publish") if n not in NOT_DATA}


def compare_table(left: pl.DataFrame, right: pl.DataFrame, name: str, examples: int = 3) -> TableComparison:
    if set(left.columns) != set(right.columns):
        gone, new = sorted(set(left.columns) - set(right.columns)), sorted(set(right.columns) - set(left.columns))
        return TableComparison(name, (left.height, right.height), problem=f"columns differ: -{gone} +{new}")
    right = right.select(left.columns)
    if left.schema != right.schema:
        diff = [f"{c}: {left.schema[c]} / {right.schema[c]}" for c in left.columns if left.schema[c] != right.schema[c]]
        return TableComparison(name, (left.height, right.height), problem=f"types differ: {'; '.join(diff)}")
    # rows as multisets: a row twice on one side and once on the other is a difference
    counted = [f.group_by(f.columns).len("__n") for f in (left, right)]
    on = [*left.columns, "__n"]
    only_l = counted[0].join(counted[1], on=on, how="anti", nulls_equal=True)
    only_r = counted[1].join(counted[0], on=on, how="anti", nulls_equal=True)
    out = TableComparison(name, (left.height, right.height), int(only_l["__n"].sum()), int(only_r["__n"].sum()))
    for side, rows in (("first", only_l), ("second", only_r)):
        for row in rows.head(examples).drop("__n").iter_rows(named=True):
            out.examples.append(f"only in the {side}: {dict(list(row.items())[:8])}")
    return out


def compare_published(left: Lake, right: Lake) -> Comparison:
    tables = []
    for name in sorted(_names(left) | _names(right)):
        a, b = left.table("publish", name), right.table("publish", name)
        if a is None or b is None:
            tables.append(
                TableComparison(name, (None, None), problem=f"missing in the {'first' if a is None else 'second'}")
            )
            continue
        tables.append(compare_table(left.read("publish", name), right.read("publish", name), name))
    return Comparison(left.root, right.root, tables)
