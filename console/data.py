"""What the console's pages show, read from the lake, the exchange and the emitted lineage — plain code, no
web framework, so each rule (who sees what, what is masked, what is audited) is tested on its own.

Every read takes the signed-in ``Viewer`` and checks it first:

- **stewards** (数据管理员) see every zone; raw and the quarantine's delivered values only through an
  audited path (a reason, written to the privileged audit log before a row is shown);
- **modelers** see what ``privacy/policy.yaml`` lets them read (std, the models, publish) — std as stored,
  with its identifiers already pseudonymised: what std hides, they never see;
- **consumers** see the catalogue of what may be shared and, of data, only their own approved shares.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import polars as pl

from exchange.ledger import RequestState
from exchange.service import Exchange
from exchange.shares import share_table_name
from lakehouse import objections
from lakehouse.cycles import Freshness, assess
from lakehouse.lake import CATALOGUE_EXPORT, Lake
from lakehouse.registry import Registry
from lakehouse.tables import ENTITY_DECISIONS, ENTITY_MATCHES, FINDINGS, OBJECTIONS, PROBLEMS, SCORES
from orchestration.lineage.naming import Naming
from privacy import access
from privacy.audit import AuditLog
from privacy.policy import mask_findings
from quality import resolution
from quality.problem_lists import EXPORT_FOLDER

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PREVIEW_ROWS = 50
QUARANTINE_ROWS = 200
NOT_SHARED = "不予共享"
SEARCH_FIELDS = ("dataset_id", "name_zh", "name_en", "description", "source_department_zh", "source_department_en")


class Denied(PermissionError):
    """The viewer's role may not see or do this; the message says why (shown to the viewer)."""


class NotFound(LookupError):
    pass


@dataclass(frozen=True)
class Viewer:
    id: str
    role: str  # steward | modeler | consumer
    name: str
    department: str

    @property
    def label(self) -> str:
        return f"{self.role}:{self.id}"

    @property
    def principal(self) -> access.Principal:
        """As the lake's access rules know it (privacy/access.py)."""
        return access.Principal(self.label, self.role, self.department if self.role == "consumer" else None)


def _require(viewer: Viewer, *roles: str, what: str) -> None:
    if viewer.role not in roles:
        raise Denied(f"{viewer.name}（{viewer.role}）无权{what} — {what} is for {' / '.join(roles)} only")


@dataclass
class Console:
    lake: Lake
    exchange: Exchange
    audit: AuditLog
    registry: Registry
    naming: Naming | None = None  # lineage's dataset names, for labels (from_settings gives it)
    # a write of an own table outside Dagster (an objection) is reported to it: (table, version, metadata)
    report: Callable[..., bool] | None = None

    # --- reads that follow the table's version ----------------------------------------------------------------
    _tables: dict | None = None

    def read(self, zone: str, name: str, columns: tuple[str, ...] | None = None) -> pl.DataFrame | None:
        """A lake table, kept in memory until its Delta version changes (a page asks the log for the version,
        a few milliseconds, and reads the data only when it moved)."""
        table = self.lake.table(zone, name)
        if table is None:
            return None
        self._tables = self._tables if self._tables is not None else {}
        key, version = (zone, name, columns), table.version()
        cached = self._tables.get(key)
        if cached is None or cached[0] != version:
            cached = (version, pl.from_arrow(table.to_pyarrow_table(columns=list(columns) if columns else None)))
            self._tables[key] = cached
        return cached[1]

    # --- the catalogue ---------------------------------------------------------------------------------------
    _catalogue_cache: tuple[bytes, list[dict]] | None = None

    def catalogue(self) -> list[dict]:
        """Every catalogued dataset with its columns (the catalogue's JSON export), re-read when it changes."""
        body = self.lake.read_bytes("catalogue", CATALOGUE_EXPORT)
        if body is None:
            return []
        if self._catalogue_cache is None or self._catalogue_cache[0] != body:
            self._catalogue_cache = (body, json.loads(body.decode("utf-8"))["datasets"])
        return self._catalogue_cache[1]

    def visible(self, viewer: Viewer) -> list[dict]:
        """The catalogue entries a viewer may look up: all for stewards; for modelers the zones they read;
        for consumers what may be shared (publish, not 不予共享)."""
        entries = self.catalogue()
        if viewer.role == "steward":
            return entries
        if viewer.role == "modeler":
            return [e for e in entries if access.can_read(viewer.principal, e["zone"]) or e["zone"] == "catalogue"]
        return [e for e in entries if e["zone"] == "publish" and e.get("share_type") != NOT_SHARED]

    def search(self, viewer: Viewer, q: str = "", facets: dict[str, str] | None = None) -> tuple[list[dict], dict]:
        """Catalogue search in Chinese or English over names, description, department and column names and
        descriptions; ``facets`` narrow by zone, department, grade and 共享属性. Returns the matches and, per
        facet, the count of each value among the matches of the text alone."""
        facets = {k: v for k, v in (facets or {}).items() if v}
        terms = [t.casefold() for t in (q or "").split() if t.strip()]

        def text_of(e: dict) -> str:
            cols = " ".join(
                f"{c.get('column')} {c.get('description') or ''} {c.get('source_header') or ''}" for c in e["columns"]
            )
            return (" ".join(str(e.get(f) or "") for f in SEARCH_FIELDS) + " " + cols).casefold()

        found = [e for e in self.visible(viewer) if all(t in text_of(e) for t in terms)]
        counts: dict[str, dict[str, int]] = {}
        for facet in FACETS:
            values: dict[str, int] = {}
            for e in found:
                if all(FACETS[f](e) == v for f, v in facets.items() if f != facet):
                    values[FACETS[facet](e)] = values.get(FACETS[facet](e), 0) + 1
            counts[facet] = dict(sorted(values.items()))
        hits = [e for e in found if all(FACETS[f](e) == v for f, v in facets.items() if f in FACETS)]
        return sorted(hits, key=lambda e: (ZONE_ORDER.get(e["zone"], 99), e["dataset_id"])), counts

    def entry(self, viewer: Viewer, zone: str, name: str) -> dict:
        for e in self.visible(viewer):
            if e["zone"] == zone and e["dataset_id"] == name:
                return e
        if any(e["zone"] == zone and e["dataset_id"] == name for e in self.catalogue()):
            raise Denied(f"{viewer.name}（{viewer.role}）无权查看 {zone}/{name} — not in what a {viewer.role} may see")
        raise NotFound(f"{zone}/{name} 不在目录中 — not in the catalogue")

    # --- a dataset page ------------------------------------------------------------------------------------
    def scores(self, viewer: Viewer, entry: dict) -> list[dict]:
        """The dataset's GB/T 36344 quality score history (std runs), oldest first."""
        if viewer.role == "consumer":
            return []
        frame = self.read(SCORES.zone, SCORES.name)
        if frame is None:
            return []
        mine = frame.filter((pl.col("level") == "dataset") & (pl.col("subject") == entry["dataset_id"]))
        return mine.sort("scored_at").to_dicts()

    def freshness(self, entry: dict, now: float | None = None) -> tuple[Freshness | None, dt.datetime | None]:
        """(freshness against the update cycle, last update) from the table's last Delta commit."""
        table = self.lake.table(entry["zone"], entry["dataset_id"])
        if table is None:
            return None, None
        stamp = table.history(1)[0].get("timestamp")
        updated = stamp / 1000 if stamp else None
        when = dt.datetime.fromtimestamp(updated, dt.UTC) if updated else None
        cycle = entry.get("update_cycle") or ""
        try:
            return assess(cycle, updated, now or time.time()), when
        except ValueError:  # an own table's "every run" has no window
            return None, when

    def preview(
        self, viewer: Viewer, zone: str, name: str, reason: str = "", limit: int = PREVIEW_ROWS
    ) -> pl.DataFrame:
        """The first rows of a lake table as the viewer may see them. Raw (as delivered) is for stewards, with
        a reason, written to the audit log before anything is read; a refusal is audited too."""
        self.entry(viewer, zone, name)  # in what the viewer may look up at all
        if viewer.role == "consumer":
            raise Denied("消费方只能查看自己的共享数据 — a consumer sees data only through its approved shares")
        if not access.can_read(viewer.principal, zone):
            self.audit.append("console.preview.denied", actor=viewer.label, zone=zone, dataset=name)
            raise Denied(
                f"{viewer.name}（{viewer.role}）无权读取 {zone} 区 — {zone} is for "
                f"{', '.join(access_readers(zone))} (privacy/policy.yaml)"
            )
        if zone in AUDITED_ZONES:
            if not reason.strip():
                raise ValueError("查看原始数据需填写事由 — reading raw data needs a reason (it is audited)")
            self.audit.append("console.preview", actor=viewer.label, zone=zone, dataset=name, reason=reason.strip())
        return head(self.lake, zone, name, limit)

    # --- quarantine --------------------------------------------------------------------------------------------
    def quarantine(self, viewer: Viewer, dataset: str = "", department: str = "", limit: int = QUARANTINE_ROWS) -> dict:
        """The quarantined and flagged rows (rule, reason, value masked as departments receive it), with each
        problem's rectification status from the problem ledger, per dataset and department."""
        _require(viewer, "steward", what="查看问题数据 browse the quarantine")
        findings = self.read(FINDINGS.zone, FINDINGS.name)
        if findings is None:
            return {"rows": [], "total": 0, "datasets": {}, "departments": {}, "status": {}}
        datasets = dict(findings.group_by("dataset").len().sort("dataset").iter_rows())
        departments = dict(findings.group_by("department").len().sort("department").iter_rows())
        if dataset:
            findings = findings.filter(pl.col("dataset") == dataset)
        if department:
            findings = findings.filter(pl.col("department") == department)
        masked = (
            pl.concat(
                [
                    mask_findings(part, self.registry.dataset(ds))
                    for (ds,), part in findings.partition_by("dataset", as_dict=True).items()
                ],
                how="diagonal_relaxed",
            )
            if findings.height
            else findings
        )
        problems = self.read(
            PROBLEMS.zone, PROBLEMS.name, ("dataset", "source_file", "row_number", "rule_id", "status", "fixed_at")
        )
        if problems is not None and masked.height:
            masked = masked.join(problems, on=["dataset", "source_file", "row_number", "rule_id"], how="left")
        status = dict(masked.group_by("status").len().iter_rows()) if "status" in masked.columns else {}
        rows = masked.sort("dataset", "source_file", "row_number").head(limit)
        return {
            "rows": rows.to_dicts(),
            "total": masked.height,
            "datasets": datasets,
            "departments": departments,
            "status": status,
        }

    def problem_lists(self, viewer: Viewer) -> dict[str, list[str]]:
        """Department → the problem-list files (XLSX, CSV) there are to download."""
        _require(viewer, "steward", what="下载问题清单 download problem lists")
        out: dict[str, list[str]] = {}
        for dept in sorted(self.registry.departments):
            files = self.lake.list_files("quarantine", f"{EXPORT_FOLDER}/{dept}")
            if files:
                out[dept] = sorted(f.rsplit("/", 1)[-1] for f in files)
        return out

    def problem_list(self, viewer: Viewer, department: str, filename: str) -> bytes:
        lists = self.problem_lists(viewer)
        if filename not in lists.get(department, []):
            raise NotFound(f"没有问题清单 {department}/{filename} — no such problem list")
        body = self.lake.read_bytes("quarantine", f"{EXPORT_FOLDER}/{department}/{filename}")
        if body is None:
            raise NotFound(f"{department}/{filename}")
        self.audit.append("console.problem_list", actor=viewer.label, department=department, file=filename)
        return body

    # --- requests and shares ---------------------------------------------------------------------------------
    def requests(self, viewer: Viewer) -> list[RequestState]:
        _require(viewer, "steward", "consumer", what="查看数据申请 see data requests")
        states = sorted(self.exchange.ledger.states().values(), key=lambda s: s.filed_at, reverse=True)
        if viewer.role == "consumer":
            states = [s for s in states if s.request.get("consumer", {}).get("id") == viewer.id]
        order = {"pending": 0, "approved": 1}
        return sorted(states, key=lambda s: order.get(s.status, 2))

    def request(self, viewer: Viewer, request_id: str) -> RequestState:
        for s in self.requests(viewer):
            if s.id == request_id:
                return s
        raise NotFound(
            f"没有数据申请 {request_id} — no such request" + (" of yours" if viewer.role == "consumer" else "")
        )

    def history(self, viewer: Viewer, request_id: str) -> list[dict]:
        """The ledger's entries of a request (without the share manifests), oldest first."""
        self.request(viewer, request_id)
        out = []
        for e in self.exchange.ledger.entries():
            d = e.get("detail", {})
            if d.get("request_id") == request_id:
                keep = {
                    k: v for k, v in d.items() if k in ("decision", "reason", "rows", "status", "expires_at", "dataset")
                }
                out.append({"at": e["at"], "action": e["action"], "actor": e.get("actor"), **keep})
        return out

    def share_preview(self, viewer: Viewer, request_id: str, dataset: str, limit: int = PREVIEW_ROWS) -> pl.DataFrame:
        """A consumer's own active share (or any, for a steward), as built: policy applied, pinned version."""
        s = self.request(viewer, request_id)
        if viewer.role == "consumer" and not s.active():
            raise Denied(f"共享不可用 — {s.why_not()}")
        if s.manifest is None or dataset not in {t["dataset"] for t in s.manifest["tables"]}:
            raise NotFound(f"{request_id} 的共享中没有 {dataset} — not in the share")
        if viewer.role == "steward":
            self.audit.append("console.share_preview", actor=viewer.label, request_id=request_id, dataset=dataset)
        return head(self.lake, "share", share_table_name(request_id, dataset), limit)

    # --- 亩均 lookup -------------------------------------------------------------------------------------------
    def mujun_search(self, viewer: Viewer, q: str, limit: int = 20) -> list[dict]:
        _require(viewer, "steward", "modeler", what="查询亩均评价 look up 亩均 evaluations")
        q = (q or "").strip()
        frame = self.read(
            "publish", "topic_mujun_evaluation", ("uscc", "year", "name", "county_code", "band", "total_score")
        )
        if frame is None or not q:
            return []
        hit = frame.filter(
            pl.col("uscc").str.to_uppercase().str.contains(q.upper(), literal=True)
            | pl.col("name").str.contains(q, literal=True)
        )
        return hit.sort("name", "year").head(limit).to_dicts()

    def mujun(self, viewer: Viewer, uscc: str, year: int) -> dict:
        """One firm's evaluation: band, rank, every indicator (value, benchmark, weight, points), the band rule
        that applied, the exemption or data gaps."""
        _require(viewer, "steward", "modeler", what="查询亩均评价 look up 亩均 evaluations")
        ev = self.read("publish", "topic_mujun_evaluation")
        row = ev.filter((pl.col("uscc") == uscc) & (pl.col("year") == year)) if ev is not None else None
        if row is None or row.height == 0:
            raise NotFound(f"没有 {uscc} {year} 年的亩均评价 — no evaluation")
        firm = row.to_dicts()[0]
        scores = self.read("publish", "topic_mujun_indicator_scores")
        indicators = (
            scores.filter((pl.col("uscc") == uscc) & (pl.col("year") == year)).sort("ord").to_dicts()
            if scores is not None
            else []
        )
        bands = [
            b for b in _seed("mujun_bands") if b["county_code"] == firm["parameter_county"] and int(b["year"]) == year
        ]
        applied = next((b for b in bands if b["band"] == firm["band"]), None)
        gaps = [i for i in indicators if i.get("value") is None or i.get("note")]
        completeness = self.read("publish", "topic_mujun_completeness")
        sources = (
            completeness.filter((pl.col("uscc") == uscc) & (pl.col("year") == year)).sort("source").to_dicts()
            if completeness is not None
            else []
        )
        return {
            "firm": firm,
            "indicators": indicators,
            "bands": bands,
            "applied": applied,
            "gaps": gaps,
            "sources": sources,
        }

    # --- objections (异议) -----------------------------------------------------------------------------------------
    def objections(self, viewer: Viewer, uscc: str, year: int) -> list[objections.Objection]:
        _require(viewer, "steward", "modeler", what="查看异议 see objections")
        return objections.of_firm(self.lake, uscc, year)

    def file_objection(
        self, viewer: Viewer, uscc: str, year: int, input: str, value: str, statement: str, evidence: str
    ) -> objections.Objection:
        """A steward records an enterprise's objection to a figure of its evaluation."""
        _require(viewer, "steward", what="登记异议 record objections")
        self.mujun(viewer, uscc, year)  # an evaluated firm and year
        found, version = objections.file(
            self.lake, self.audit, viewer.label, uscc, year, input, value, statement, evidence
        )
        self._reported(version, objection_id=found.id, event="filed")
        return found

    def decide_objection(self, viewer: Viewer, objection_id: str, accept: bool, reason: str) -> objections.Objection:
        """A steward accepts (the correction replaces the input; the evaluation is recomputed and published
        again) or rejects an objection, with a reason."""
        _require(viewer, "steward", what="处理异议 decide objections")
        found, version = objections.decide(self.lake, self.audit, viewer.label, objection_id, accept, reason)
        self._reported(version, objection_id=found.id, event=found.status)
        return found

    def _reported(self, version: int, **metadata: str) -> None:
        if self.report is not None:
            self.report(OBJECTIONS, version, **metadata)

    # --- entity resolution (主体识别) -----------------------------------------------------------------------------
    def entity_matches(self, viewer: Viewer, status: str = "review", dataset: str = "") -> dict:
        """The records quarantined for the enterprise's identity and how each was matched (ops/entity_matches):
        the review queue (status ``review``) and every other status, with the candidates to choose from."""
        _require(viewer, "steward", what="复核主体识别 review entity matches")
        matches = self.read(ENTITY_MATCHES.zone, ENTITY_MATCHES.name)
        if matches is None or matches.height == 0:
            return {"rows": [], "statuses": {}, "datasets": {}, "total": 0}
        statuses = dict(matches.group_by("status").len().sort("status").iter_rows())
        datasets = dict(matches.group_by("dataset").len().sort("dataset").iter_rows())
        chosen = matches
        if status:
            chosen = chosen.filter(pl.col("status") == status)
        if dataset:
            chosen = chosen.filter(pl.col("dataset") == dataset)
        rows = []
        for r in chosen.sort("dataset", "source_file", "row_number").head(QUARANTINE_ROWS).iter_rows(named=True):
            listed = [c for c in (r["candidates"] or "").split("；") if c]
            r["options"] = [(c.split(" ", 1)[0], c) for c in listed]
            rows.append(r)
        return {"rows": rows, "statuses": statuses, "datasets": datasets, "total": chosen.height}

    def chain_unknown(self, viewer: Viewer) -> dict:
        """The firms on a published supply-chain link whose industry the master does not know (the dbt model
        ``topic_chain_unknown_industries`` lists them in the warehouse): per firm, its side, links and value —
        for a steward to resolve (a registration to match, an industry code to obtain)."""
        _require(viewer, "steward", what="复核主体识别 review entity matches")
        edges = self.read("publish", "topic_chain_edges")
        if edges is None or edges.height == 0:
            return {"rows": [], "links": 0, "known": 0}
        sides = [
            edges.filter(pl.col(f"{side}_industry").is_null()).select(
                pl.col(f"{side}_uscc").alias("uscc"),
                pl.col(f"{side}_name").alias("name"),
                pl.lit(label).alias("side"),
                "orders",
                "amount_yuan",
            )
            for side, label in (("supplier", "供方 supplier"), ("buyer", "需方 buyer"))
        ]
        unknown = pl.concat(sides)
        firms = (
            unknown.group_by("uscc")
            .agg(
                pl.col("name").drop_nulls().first(),
                pl.col("side").unique().sort().str.join("，"),
                pl.len().alias("links"),
                pl.col("orders").sum(),
                pl.col("amount_yuan").sum(),
            )
            .sort("amount_yuan", "uscc", descending=[True, False])
        )
        return {"rows": firms.head(QUARANTINE_ROWS).to_dicts(), "links": unknown.height, "known": edges.height}

    def decide_entity(
        self, viewer: Viewer, dataset: str, source_file: str, row_number: int, decision: str, uscc: str, reason: str
    ) -> int:
        """A steward confirms a record's enterprise (a candidate, or a code they checked) or rejects the match;
        the next resolution run applies it, and Dagster is told so the run follows."""
        _require(viewer, "steward", what="确认主体识别 decide entity matches")
        version = resolution.decide(
            self.lake, self.audit, viewer.label, dataset, source_file, row_number, decision, uscc or None, reason
        )
        if self.report is not None:
            self.report(ENTITY_DECISIONS, version, dataset=dataset, decision=decision)
        return version

    # --- column lineage ----------------------------------------------------------------------------------------
    _lineage_cache: tuple[tuple, object] | None = None

    def _graph(self):
        from orchestration.lineage.impact import LineageGraph
        from orchestration.lineage.transport import LakeFileTransport

        files = self.lake.list_files("ops", "lineage", ".jsonl")
        stamp = (len(files), max(files, default=""))
        if self._lineage_cache is None or self._lineage_cache[0] != stamp:
            self._lineage_cache = (stamp, LineageGraph.from_events(LakeFileTransport(self.lake).read_all()))
        return self._lineage_cache[1]

    def lineage(self, viewer: Viewer, dataset: str, column: str) -> list[dict]:
        """A published (or any lake) column's path back to its landing header or source column, one step per
        hop with the transformation, privacy transforms marked."""
        _require(viewer, "steward", "modeler", what="查看字段血缘 see column lineage")
        zone, _, name = dataset.partition("/")
        entry = self.entry(viewer, zone, name)
        if column not in {c["column"] for c in entry["columns"]}:
            raise NotFound(f"{dataset} 没有字段 {column} — no such column")
        graph = self._graph()
        start = (self.lake.location, dataset, column)
        if start not in graph.column_parents and start[:2] not in graph.latest_outputs:
            raise NotFound(f"血缘事件中没有 {dataset}.{column} — no lineage emitted for it yet")
        steps, previous = [], {}
        for depth, c, how in graph.upstream(start):
            previous[depth] = c
            child = previous.get(depth - 1)
            steps.append(
                {
                    "depth": depth,
                    "dataset": self.naming.short(c[0], c[1]) if self.naming else f"{c[0]}::{c[1]}",
                    "column": c[2],
                    "how": how,
                    "masked": child is not None and (child, c) in graph.masked,
                }
            )
        return steps

    def published_columns(self, viewer: Viewer) -> dict[str, list[str]]:
        """The publish datasets and their columns the lineage page offers."""
        return {
            e["zone"] + "/" + e["dataset_id"]: [c["column"] for c in e["columns"]]
            for e in self.visible(viewer)
            if e["zone"] in ("publish", "std", "raw")
        }

    @cached_property
    def departments(self) -> dict[str, str]:
        return {d: dept.name_zh for d, dept in self.registry.departments.items()}


AUDITED_ZONES = frozenset({"raw", "quarantine"})
ZONE_ORDER = {
    z: i
    for i, z in enumerate(
        ("raw", "std", "base", "theme", "topic", "publish", "share", "quarantine", "quality", "catalogue", "ops")
    )
}
FACETS = {
    "zone": lambda e: e["zone"],
    "department": lambda e: e.get("source_department_zh") or e.get("source_department") or "",
    "grade": lambda e: e.get("grade") or "",
    "share_type": lambda e: e.get("share_type") or "",
}


def access_readers(zone: str) -> list[str]:
    from privacy.policy import policy

    return list(policy()["zones"].get(zone, {}).get("readers", ["steward"]))


def head(lake: Lake, zone: str, name: str, limit: int) -> pl.DataFrame:
    """The first ``limit`` rows of a Delta table, reading only the first pages they are in."""
    scan = lake.scan(zone, name)
    if scan is None:
        raise NotFound(f"{zone}/{name} 尚未写入 — not written yet")
    return scan.head(limit).collect()


def _seed(name: str) -> list[dict]:
    with open(PROJECT_ROOT / "dbt_project" / "seeds" / f"{name}.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def from_settings(s=None) -> Console:
    from assets.own_tables import report_write
    from exchange.service import Exchange
    from lakehouse.registry import registry
    from orchestration.lineage.emit import naming
    from orchestration.settings import settings

    s = s or settings()
    ex = Exchange(s.lake(), s.exchange_dir, s.sharing_endpoint, audit_log=s.audit_log)

    def report(table, version: int, **metadata: str) -> bool:
        return report_write(s, table, version, **metadata)

    return Console(s.lake(), ex, AuditLog(s.audit_log), registry(), naming(s), report)
