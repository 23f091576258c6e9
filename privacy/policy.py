"""Zone policies: what each zone may hold, applied by the stage that writes it."""

from __future__ import annotations

import functools
from pathlib import Path

import polars as pl

from assets.registry import Dataset
from privacy import transforms
from privacy.grading import grading, unclassified
from privacy.keys import KeyRing
from quality import yamlfile

POLICY_PATH = Path(__file__).with_name("policy.yaml")


@functools.cache
def policy() -> dict:
    return yamlfile.load(POLICY_PATH)


def pseudonym_domain(column: str) -> str:
    try:
        return policy()["pseudonym_domains"][column]
    except KeyError:
        raise ValueError(
            f"{POLICY_PATH}: column {column!r} is a direct identifier without a pseudonym domain; add it under "
            "pseudonym_domains"
        ) from None


def std_transforms(ds: Dataset) -> dict[str, str]:
    """column → what the std zone does to it: 'pseudonymise' (direct identifiers) or 'redact' (free text)."""
    out, pending = {}, set(unclassified(ds))  # unclassified columns keep the dataset in raw anyway
    for c in ds.columns:
        if c.name in pending:
            continue
        g = grading(ds, c)
        if g.role == "direct":
            out[c.name] = "pseudonymise"
        elif g.classification == "free_text":
            out[c.name] = "redact"
    return out


def std_levels(ds: Dataset) -> dict[str, str]:
    """The level of each std column, propagated from its raw column through the std transform."""
    from privacy.propagation import propagate

    done = {"pseudonymise": "pseudonymised", "redact": "redacted"}
    return propagate(
        {c.name: [(ds.id, c.name)] for c in ds.columns},
        lambda _, column: grading(ds, column).level,
        {c: done[w] for c, w in std_transforms(ds).items()},
    )


def apply_std(frame: pl.DataFrame, ds: Dataset, ring: KeyRing) -> pl.DataFrame:
    """The std zone's policy on standardised rows: pseudonyms for direct identifiers, free text redacted."""
    exprs = []
    for column, how in std_transforms(ds).items():
        if how == "pseudonymise":
            exprs.append(transforms.pseudonym(pl.col(column), ring, pseudonym_domain(column)).alias(column))
        else:
            exprs.append(transforms.redact(pl.col(column)).alias(column))
    return frame.with_columns(exprs) if exprs else frame
