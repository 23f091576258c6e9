"""The privacy gate for anything published or shared, and the k-anonymity tools it uses.

A dataset passes when: the scanner finds no valid resident ID or mobile in it; no direct identifier
column is present; no column graded above the policy's ``max_untransformed_level`` is exposed without an
approved transform (aggregation that passes the k check, pseudonymisation, masking); and every
combination of the declared quasi-identifiers occurs at least k times.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from privacy.grading import Grading, level_rank
from privacy.policy import policy
from privacy.scan import valid_identifiers

APPROVED = ("aggregated", "pseudonymised", "masked", "generalised", "suppressed")


@dataclass(frozen=True)
class GateProblem:
    rule: str  # scanner | direct_identifier | grade | k_anonymity
    detail: str


def k() -> int:
    """The policy's k (k-anonymity classes, small cells)."""
    return int(policy()["gate"]["k"])


def smallest_class(frame: pl.DataFrame, quasi: list[str]) -> int | None:
    """k of the frame: the size of its smallest equivalence class over ``quasi`` (None: no rows)."""
    if frame.height == 0 or not quasi:
        return None
    return int(frame.group_by(quasi).len()["len"].min())


def small_classes(frame: pl.DataFrame, quasi: list[str], k: int) -> pl.DataFrame:
    return frame.group_by(quasi).len().filter(pl.col("len") < k).sort(quasi)


def suppress_small_cells(frame: pl.DataFrame, count: str, k: int, columns: list[str]) -> pl.DataFrame:
    """Small-cell suppression for aggregates: where ``count`` < k, the count and ``columns`` become null
    and ``suppressed`` is true."""
    small = pl.col(count) < k
    return frame.with_columns(
        *(pl.when(small).then(None).otherwise(pl.col(c)).alias(c) for c in [count, *columns]),
        small.fill_null(False).alias("suppressed"),
    )


def check(
    frame: pl.DataFrame,
    gradings: dict[str, Grading],
    transformed: dict[str, str] | None = None,
    quasi: list[str] | None = None,
    k: int | None = None,
) -> list[GateProblem]:
    """Everything that stops ``frame`` from being published; empty when it may be.

    ``gradings`` are the graded columns (propagated from their sources), ``transformed`` says which
    columns went through an approved transform, ``quasi`` the declared quasi-identifiers."""
    transformed = transformed or {}
    k = k if k is not None else int(policy()["gate"]["k"])
    limit = level_rank(policy()["gate"]["max_untransformed_level"])
    problems = []
    found = valid_identifiers(frame)
    for kind, n in found.items():
        if n:
            problems.append(GateProblem("scanner", f"{n} valid {kind} value(s) found"))
    for column, g in gradings.items():
        if column not in frame.columns:
            continue
        how = transformed.get(column)
        if how is not None and how not in APPROVED:
            raise ValueError(f"{column}: {how!r} is not an approved transform; approved are {APPROVED}")
        if g.role == "direct" and how not in ("pseudonymised", "masked", "suppressed"):
            problems.append(GateProblem("direct_identifier", f"{column} identifies natural persons"))
        elif level_rank(g.level) > limit and how is None:
            problems.append(GateProblem("grade", f"{column} is {g.level} ({g.grade}) and exposed untransformed"))
    if quasi:
        smallest = smallest_class(frame, quasi)
        if smallest is not None and smallest < k:
            n = small_classes(frame, quasi, k).height
            problems.append(
                GateProblem("k_anonymity", f"{n} combination(s) of {quasi} occur fewer than {k} times (min {smallest})")
            )
    return problems
