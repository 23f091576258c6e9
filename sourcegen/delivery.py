"""A delivery: one file as a department or enterprise platform sends it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass
class Delivery:
    dataset: str
    path: str  # relative to the landing root
    frame: pl.DataFrame  # text columns as delivered, plus defect markers
    fmt: str  # csv | xlsx | jsonl
    encoding: str = "utf-8"  # csv only: gb18030 | utf-8-sig | utf-8
    damage: str | None = None  # truncated | schema_drift | unreadable | empty
    drift: dict[str, str] | None = None  # renamed columns, for schema_drift


def money(values: np.ndarray, decimals: int = 2) -> list[str]:
    return np.char.mod(f"%.{decimals}f", np.asarray(values, dtype=float)).tolist()
