"""Differential privacy for aggregates released outside the warehouse: the Laplace mechanism with a
privacy budget accounted per release.

OpenDP would be the library for this, but OpenDP 0.16 pins polars 1.36.1 exactly (ARCHITECTURE.md §6),
which the stack cannot take; this is the documented mechanism instead. Noise is Laplace(0, Δ/ε) from
NumPy's PCG64 seeded by the OS's CSPRNG; counts are rounded and clipped at zero (post-processing, which
costs no budget). Known limit: floating-point Laplace sampling leaks through its low-order bits
(Mironov 2012); releases are rounded to whole units, which is the usual mitigation, not a proof.
Budgets (ε per release name, basic composition) are kept in a JSON ledger and every spend goes to the
audit log.

Used by the exchange (``exchange/shares.py``): a de-identified aggregate shared with a consumer not
entitled to data about named firms gets its counts through ``noisy_counts``, each release spending ε from
that consumer's budget for the dataset. A model that releases counts of natural persons outside the
warehouse must release them through ``release_counts`` with a ``Budget``.
"""

from __future__ import annotations

import fcntl
import json
import secrets
from pathlib import Path

import numpy as np
import polars as pl

from privacy.audit import AuditLog


class BudgetExceeded(RuntimeError):
    pass


class Budget:
    """ε spent per release name against a total; sequential composition (spends add up)."""

    def __init__(self, path: Path, total: float, audit: AuditLog | None = None):
        self.path, self.total, self.audit = Path(path), float(total), audit

    def spent(self, release: str) -> float:
        if not self.path.exists():
            return 0.0
        return float(json.loads(self.path.read_text() or "{}").get(release, 0.0))

    def spend(self, release: str, epsilon: float) -> float:
        """Records ``epsilon`` for ``release``; refuses (and records nothing) beyond the total."""
        if epsilon <= 0:
            raise ValueError("epsilon must be positive")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            ledger = json.loads(fh.read() or "{}")
            used = float(ledger.get(release, 0.0))
            if used + epsilon > self.total + 1e-12:
                raise BudgetExceeded(
                    f"release {release!r}: ε {epsilon} would bring the spent budget to {used + epsilon:.3f} "
                    f"of {self.total}"
                )
            ledger[release] = used + epsilon
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(ledger, sort_keys=True))
        if self.audit:
            self.audit.append("dp.spend", release=release, epsilon=epsilon, spent=used + epsilon, total=self.total)
        return used + epsilon


def noisy_counts(values: pl.Series, epsilon: float, seed: int) -> pl.Series:
    """Counts released with Laplace noise (sensitivity 1), rounded and clipped at zero; null stays null.
    ``seed`` makes one release reproducible: built again, the same release gives the same numbers (no new
    information, so no new budget is due for it)."""
    noisy = laplace(values.fill_null(0), 1.0, epsilon, seed).round(0).clip(0, None).cast(pl.Int64)
    return pl.select(pl.when(values.is_null()).then(None).otherwise(noisy)).to_series().alias(values.name)


def laplace(values: pl.Series, sensitivity: float, epsilon: float, seed: int | None = None) -> pl.Series:
    rng = np.random.default_rng(seed if seed is not None else secrets.randbits(128))
    noise = rng.laplace(0.0, sensitivity / epsilon, size=values.len())
    return (values.cast(pl.Float64) + pl.Series(noise)).alias(values.name)


def release_counts(
    frame: pl.DataFrame,
    by: list[str],
    epsilon: float,
    budget: Budget,
    release: str,
    seed: int | None = None,
) -> pl.DataFrame:
    """Noisy counts per group (sensitivity 1: one record changes one count by one), rounded and clipped."""
    budget.spend(release, epsilon)
    counts = frame.group_by(by).len("count").sort(by)
    noisy = laplace(counts["count"], 1.0, epsilon, seed).round(0).clip(0, None).cast(pl.Int64)
    return counts.with_columns(noisy.alias("count"), pl.lit(epsilon).alias("epsilon"))
