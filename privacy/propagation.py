"""Grade propagation (就高从严) along column lineage.

A derived column is graded at the highest grade of the columns it is derived from, unless an approved
transform lowers it: pseudonymisation, masking, generalisation and redaction to L2 (still personal
information, GB/T 35273), aggregation that passed the k-anonymity check and suppression to L1. Anything
else keeps the inherited grade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from privacy.grading import highest, level_rank

LOWERS_TO = {
    "pseudonymised": "L2",
    "masked": "L2",
    "generalised": "L2",
    "redacted": "L2",
    "aggregated": "L1",  # only after the aggregate passed the k-anonymity gate
    "suppressed": "L1",
}


def propagate(
    deps: Mapping[str, Iterable[tuple[str, str]]],
    level_of: Callable[[str, str], str],
    transforms: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """column → level, from ``deps`` (column → its input (dataset, column)s), the inputs' levels and the
    approved transform applied to each output column, if any."""
    transforms = transforms or {}
    out = {}
    for column, inputs in deps.items():
        inputs = list(inputs)
        inherited = highest(level_of(d, c) for d, c in inputs) if inputs else "L1"
        how = transforms.get(column)
        if how is None:
            out[column] = inherited
        elif how not in LOWERS_TO:
            raise ValueError(f"{column}: {how!r} is not an approved transform; approved are {sorted(LOWERS_TO)}")
        else:
            target = LOWERS_TO[how]
            out[column] = target if level_rank(target) < level_rank(inherited) else inherited
    return out


def derive(
    deps: Mapping[str, Iterable[tuple[str, str]]],
    grading_of: Callable[[str, str], tuple[str, str]],
    declared: Mapping[str, Mapping[str, str]],
) -> dict[str, dict[str, str | None]]:
    """Level and identifier role of each column of a derived dataset (a dbt model).

    ``deps``: column → its input (dataset, column)s from column lineage; ``grading_of(dataset, column)`` →
    (level, role) of an input; ``declared``: the model's column meta (``privacy_transform``, ``role``,
    ``grade``). The level is propagated (就高从严) and lowered only by a declared approved transform; a
    column computed from a direct identifier stays a direct identifier unless pseudonymised, masked or
    suppressed. A declared ``grade`` may raise the level, never lower it. A column with no input column
    (a constant) is L1."""
    out = {}
    for column, ins in deps.items():
        meta = declared.get(column, {})
        graded = [grading_of(d, c) for d, c in ins]
        how = meta.get("privacy_transform")
        level = propagate(
            {column: [(str(i), "") for i in range(len(graded))]},
            lambda i, _, g=graded: g[int(i)][0],
            {column: how} if how else None,
        )[column]
        if (wanted := meta.get("grade")) and level_rank(wanted) > level_rank(level):
            level = wanted
        direct = any(role == "direct" for _, role in graded) and how not in ("pseudonymised", "masked", "suppressed")
        role = "direct" if direct else meta.get("role") or ("sensitive" if graded else "none")
        inherited = highest(lv for lv, _ in graded) if graded else "L1"
        out[column] = {"level": level, "role": role, "transform": how, "inherited": inherited}
    return out
