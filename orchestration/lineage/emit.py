"""Emit the lineage of one Dagster run: build, write to the lake, deliver over HTTP, tag the run."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from lakehouse.registry import registry
from orchestration.lineage.events import RunLineage
from orchestration.lineage.naming import DEFAULT_JOB_NAMESPACE, Naming
from orchestration.lineage.transport import Delivery, LakeFileTransport, SpoolingHttpTransport, to_dicts
from orchestration.settings import Settings

log = logging.getLogger(__name__)
RUN_TAG = "shucang/lineage"


@dataclass
class LineageReport:
    events: int
    file: str | None
    http: Delivery | None
    run_id: str | None = None

    def summary(self) -> str:
        """What the run's tag says: the events' place in the lake (zone/file), not this machine's path."""
        where = f"ops/{LakeFileTransport.FOLDER}/{self.run_id}.jsonl (lake)" if self.run_id else self.file
        text = f"{self.events} OpenLineage events → {where}"
        if self.http:
            h = self.http
            text += f"; HTTP: {h.sent} sent, {h.resent} re-sent from spool"
            if h.spooled:
                text += f", {h.spooled} SPOOLED (endpoint unreachable: {h.error}); they will be re-sent"
        return text


def naming(s: Settings) -> Naming:
    return Naming(
        s.lake(),
        s.landing_bucket or str(s.landing_root),
        str(s.warehouse_path),
        registry(),
        os.environ.get("OPENLINEAGE_NAMESPACE", DEFAULT_JOB_NAMESPACE),
        f"sail://{os.environ.get('SAIL_REMOTE') or 'embedded'}" if s.dbt_target == "sail" else None,
    )


def http_transport(s: Settings) -> SpoolingHttpTransport | None:
    url = os.environ.get("OPENLINEAGE_URL")
    if not url:
        return None
    return SpoolingHttpTransport(
        url,
        Path(s.data_dir) / "lineage-spool",
        os.environ.get("OPENLINEAGE_ENDPOINT", "api/v1/lineage"),
        os.environ.get("OPENLINEAGE_API_KEY"),
    )


def emit_run(
    instance: dg.DagsterInstance, run_id: str, graph, s: Settings, http: SpoolingHttpTransport | None = None
) -> LineageReport:
    """Never raises for delivery problems: they are spooled and reported on the run's tags."""
    events = to_dicts(RunLineage(instance, graph, naming(s)).events(run_id))
    path = LakeFileTransport(s.lake()).write(run_id, events)
    http = http if http is not None else http_transport(s)
    delivery = http.deliver(events) if http else None
    report = LineageReport(len(events), path, delivery, run_id)
    instance.add_run_tags(run_id, {RUN_TAG: report.summary()[:1000]})
    (log.warning if delivery and delivery.spooled else log.info)(report.summary())
    return report
