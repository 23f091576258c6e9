"""Zone policies: what each zone may hold, applied by the stage that writes it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field, model_validator

from lakehouse import config
from lakehouse.config import Strict
from lakehouse.registry import Dataset
from privacy import transforms
from privacy.grading import grading, unclassified
from privacy.keys import KeyRing

POLICY_PATH = Path(__file__).with_name("policy.yaml")


NAME_DOMAIN = "person_name"
ROW = "row"  # a name qualified by its row: a pseudonym of its own
Role = Literal["steward", "modeler", "consumer"]
Level = Literal["L1", "L2", "L3", "L4"]


class ZonePolicy(Strict):
    readers: list[Role] = Field(min_length=1)
    direct: Literal["pseudonymise", "redact"] | None = None  # only the std stage transforms identifiers
    free_text: Literal["redact"] | None = None


class Gate(Strict):
    k: int = Field(ge=2)
    max_untransformed_level: Level


class PrivacyPolicy(Strict):
    zones: dict[Literal["raw", "std", "base", "theme", "topic", "publish", "share"], ZonePolicy]
    pseudonym_domains: dict[str, str]  # column → the domain its pseudonyms are keyed in
    pseudonym_qualifiers: dict[str, str] = {}  # name column → the same person's identifier column, or "row"
    gate: Gate

    @model_validator(mode="after")
    def _names_are_qualified(self) -> PrivacyPolicy:
        for column, domain in self.pseudonym_domains.items():
            if domain == NAME_DOMAIN and column not in self.pseudonym_qualifiers:
                raise ValueError(
                    f"pseudonym_qualifiers: {column} is a person's name: name the same person's identifier column "
                    "beside it (or 'row': a pseudonym per row), so that namesakes do not share a pseudonym"
                )
        for column, qualifier in self.pseudonym_qualifiers.items():
            if self.pseudonym_domains.get(column) != NAME_DOMAIN:
                raise ValueError(f"pseudonym_qualifiers: {column} is not in the {NAME_DOMAIN} domain")
            if qualifier != ROW and qualifier not in self.pseudonym_domains:
                raise ValueError(f"pseudonym_qualifiers.{column}: {qualifier} is not an identifier column")
        return self

    @model_validator(mode="after")
    def _transforms_in_std_only(self) -> PrivacyPolicy:
        for zone, p in self.zones.items():
            if zone != "std" and (p.direct or p.free_text):
                raise ValueError(f"zones.{zone}: only the std stage transforms identifiers (direct, free_text)")
        std = self.zones.get("std")
        if std is None or std.direct is None or std.free_text is None:
            raise ValueError("zones.std: needs direct and free_text (what the std stage does to them)")
        return self


@functools.cache
def policy() -> dict:
    return config.load(POLICY_PATH, PrivacyPolicy, "privacy policy").model_dump()


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
    std = policy()["zones"]["std"]
    out, pending = {}, set(unclassified(ds))  # unclassified columns keep the dataset in raw anyway
    for c in ds.columns:
        if c.name in pending:
            continue
        g = grading(ds, c)
        if g.role == "direct":
            out[c.name] = std["direct"]
        elif g.classification == "free_text":
            out[c.name] = std["free_text"]
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


def pseudonym_input(column: str, columns: list[str]) -> pl.Expr:
    """What a column's pseudonym is computed from: its value — or, for a name, the value with the same
    person's identifier of the row (``pseudonym_qualifiers``), or with the row's provenance (``row``, or a
    row without that identifier), so that namesakes never share a pseudonym."""
    qualifier = policy()["pseudonym_qualifiers"].get(column)
    if qualifier is None:
        return pl.col(column)
    row = pl.concat_str(
        [pl.lit(f"row\x1f{column}\x1f"), pl.col("_file_sha256"), pl.lit(":"), pl.col("_row_number").cast(pl.String)]
    )
    if qualifier == ROW:
        by = row
    elif qualifier in columns:
        by = pl.coalesce(pl.concat_str([pl.lit(qualifier + "\x1f"), pl.col(qualifier).cast(pl.String)]), row)
    else:
        raise ValueError(f"{POLICY_PATH}: pseudonym_qualifiers.{column} is {qualifier}, which this dataset lacks")
    return pl.when(pl.col(column).is_null()).then(None).otherwise(pl.concat_str([by, pl.lit("\x1f"), pl.col(column)]))


def apply_std(frame: pl.DataFrame, ds: Dataset, ring: KeyRing) -> pl.DataFrame:
    """The std zone's policy on standardised rows: pseudonyms for direct identifiers (names qualified, see
    ``pseudonym_input``), free text redacted."""
    exprs = []
    for column, how in std_transforms(ds).items():
        if how == "pseudonymise":
            value = pseudonym_input(column, frame.columns)
            exprs.append(transforms.pseudonym(value, ring, pseudonym_domain(column)).alias(column))
        else:
            exprs.append(transforms.redact(pl.col(column)).alias(column))
    return frame.with_columns(exprs) if exprs else frame


def mask_findings(findings: pl.DataFrame, ds: Dataset) -> pl.DataFrame:
    """Quarantine findings as they may be kept and sent back to departments: the delivered value of an
    identifier column masked (first 3 and last 4 characters kept, the rest starred), of a free-text column
    redacted. The row reference (file, row number) leads to the full value in raw, through the audited
    ``reidentify`` path."""
    how = std_transforms(ds)
    if findings.height == 0 or not how:
        return findings
    direct = [c for c, w in how.items() if w == "pseudonymise"]
    free = [c for c, w in how.items() if w == "redact"]
    value = pl.col("value")
    return findings.with_columns(
        pl.when(pl.col("column").is_in(direct))
        .then(transforms.mask(value, 3, 4))
        .when(pl.col("column").is_in(free))
        .then(transforms.redact(value))
        .otherwise(value)
        .alias("value")
    )
