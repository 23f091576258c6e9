"""Landing-zone scanning for sensors: cheap fingerprints (size, mtime, change time, inode), no file
contents read.

The collector decides by content hash; the sensor only has to notice that something arrived that has
not been collected yet. Its cursor holds what was in the folder at the last tick.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from assets.ingest.collector import Fingerprint, fingerprint
from assets.ingest.landing import entries
from lakehouse.registry import Dataset


def scan(dataset: Dataset, landing_root: Path, settle_seconds: float = 0.0) -> dict[str, Fingerprint]:
    """Every entry of the landing folder a collection run would record — files to collect, links to refuse,
    files to ignore with a reason — but not uploads still in progress (they count once renamed or settled,
    being new to the cursor then)."""
    found = entries(dataset, landing_root, settle_seconds)
    return {e.name: fingerprint(e.lstat()) for e in found if e.disposition != "wait"}


def scan_landing(dataset: Dataset, landing) -> dict[str, Fingerprint]:
    """``scan`` of a ``LandingResource``'s folder, or of its bucket's listing (no download)."""
    mirror = landing.mirror()
    if mirror is not None:
        return mirror.fingerprints(dataset)
    return scan(dataset, Path(landing.landing_root), landing.settle_seconds)


@dataclass(frozen=True)
class Arrivals:
    files: list[str]  # new or changed since the cursor and not collected yet, sorted
    cursor: str  # the cursor to store: what is in the folder now

    @property
    def run_key(self) -> str:
        return hashlib.sha256(self.cursor.encode()).hexdigest()[:16]

    def reason(self, dataset: Dataset) -> str:
        shown = ", ".join(f.rsplit("/", 1)[-1] for f in self.files[:5])
        more = f" and {len(self.files) - 5} more" if len(self.files) > 5 else ""
        return f"{len(self.files)} new or changed file(s) in landing/{dataset.landing}: {shown}{more}"


def arrivals(
    previous_cursor: str | None,
    current: dict[str, Fingerprint],
    collected: set[tuple] = frozenset(),
) -> Arrivals:
    """Files that changed since the last tick, less those the collect log shows landed unchanged."""
    seen = {f: tuple(fp) for f, fp in json.loads(previous_cursor).items()} if previous_cursor else {}
    new = sorted(f for f, fp in current.items() if seen.get(f) != fp and (f, *fp) not in collected)
    return Arrivals(new, json.dumps(current, sort_keys=True, ensure_ascii=False))
