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
