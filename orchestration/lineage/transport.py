"""Where events go: JSON Lines under the lake (always), and an OpenLineage HTTP endpoint when configured.

Lineage never fails the pipeline and is never silently lost: an event the endpoint does not take is
spooled on disk, in order, and re-sent first on the next delivery (or by ``lineage flush``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from openlineage.client.serde import Serde
from openlineage.client.transport.http import HttpConfig, HttpTransport

from lakehouse.lake import Lake


class LakeFileTransport:
    """One JSON Lines file per Dagster run under ``<lake>/ops/lineage/``; rewriting a run replaces its file."""

    FOLDER = "lineage"  # in the ops zone

    def __init__(self, lake: Lake):
        self.lake = lake

    def write(self, run_id: str, events: list[dict]) -> str:
        body = "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in events)
        return self.lake.write_bytes("ops", f"{self.FOLDER}/{run_id}.jsonl", body.encode("utf-8"))

    def read_all(self) -> list[dict]:
        events = []
        for name in self.lake.list_files("ops", self.FOLDER, ".jsonl"):
            text = (self.lake.read_bytes("ops", name) or b"").decode("utf-8")
            events += [json.loads(line) for line in text.splitlines() if line.strip()]
        return events


@dataclass
class Delivery:
    sent: int = 0
    spooled: int = 0
    resent: int = 0
    error: str | None = None


class SpoolingHttpTransport:
    """The official client's HTTP transport, with an on-disk spool in front of it."""

    def __init__(
        self, url: str, spool: Path, endpoint: str = "api/v1/lineage", api_key: str | None = None, timeout: float = 5.0
    ):
        config = {
            "url": url,
            "endpoint": endpoint,
            "timeout": timeout,
            "retry": {"total": 1, "backoff_factor": 0.1, "status_forcelist": [500, 502, 503, 504]},
        }
        if api_key:
            config["auth"] = {"type": "api_key", "apiKey": api_key}
        self.http = HttpTransport(HttpConfig.from_dict(config))
        self.spool = spool

    def _spooled(self) -> list[Path]:
        return sorted(self.spool.glob("*.json")) if self.spool.is_dir() else []

    def _park(self, events: list[dict]) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        stamp = time.time_ns()
        for i, event in enumerate(events):
            tmp = self.spool / f"{stamp:020d}-{i:05d}.tmp"
            tmp.write_text(json.dumps(event, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, tmp.with_suffix(".json"))  # a half-written event is never re-sent

    def flush(self, report: Delivery | None = None) -> Delivery:
        """Re-send spooled events oldest first; stop at the first failure, keeping order."""
        report = report or Delivery()
        for path in self._spooled():
            try:
                self.http.emit(json.loads(path.read_text(encoding="utf-8")))
            except Exception as exc:  # any failure to deliver keeps the event spooled
                report.error = f"{type(exc).__name__}: {exc}"
                return report
            path.unlink()
            report.resent += 1
        return report

    def deliver(self, events: list[dict]) -> Delivery:
        report = self.flush()
        if report.error:  # the endpoint is down: queue behind what is waiting, in order
            self._park(events)
            report.spooled = len(events)
            return report
        for i, event in enumerate(events):
            try:
                self.http.emit(event)
            except Exception as exc:
                report.error = f"{type(exc).__name__}: {exc}"
                self._park(events[i:])
                report.spooled = len(events) - i
                return report
            report.sent += 1
        return report

    @property
    def pending(self) -> int:
        return len(self._spooled())


def to_dicts(events) -> list[dict]:
    return [Serde.to_dict(e) for e in events]
