"""``summary``: what the warehouse holds now — raw, std, privacy, the publish zone and the exchange — as the
demo prints it at its end."""

from __future__ import annotations

import polars as pl

from exchange.ledger import Ledger
from lakehouse.lake import CATALOGUE_EXPORT
from lakehouse.tables import COLLECT_LOG, DUPLICATES, FINDINGS
from orchestration.settings import Settings
from privacy.audit import AuditLog


def _where(row: dict) -> str:
    """A catalogue row's table in the lake (zone/name), which the summary says it built."""
    return f"{row['zone']}/{row['dataset_id']}"


def _collection_section(lake) -> list[str]:
    """归集: each department's deliveries due so far — on time, late, refused, missing — and its 归集率."""
    rates, status = lake.read("ops", "collection_rate"), lake.read("ops", "collection_status")
    if rates is None or status is None:
        return []
    out = [
        "",
        "  归集 — deliveries due by department (ops/collection_status, ops/collection_rate)",
        f"  {_pad('数源单位', 34)}{'due':>5}{'on time':>9}{'late':>6}{'refused':>9}{'missing':>9}{'归集率':>8}",
    ]
    by = rates.group_by("department_name").agg(pl.col("expected", "on_time", "late", "rejected", "missing").sum())
    for r in by.sort("department_name").iter_rows(named=True):
        rate = r["on_time"] / r["expected"] if r["expected"] else 0.0
        out.append(
            f"  {_pad(r['department_name'], 34)}{r['expected']:>5}{r['on_time']:>9}{r['late']:>6}"
            f"{r['rejected']:>9}{r['missing']:>9}{rate:>9.0%}"
        )
    late = status.filter(pl.col("state").is_in(["late", "rejected", "missing"])).sort("dataset", "period")
    if late.height:
        out.append(
            "  not on time: "
            + "; ".join(
                f"{r['dataset']} {r['period']} " + (f"{r['days_late']} d late" if r["state"] == "late" else r["state"])
                for r in late.iter_rows(named=True)
            )
        )
    return out


def summary(s: Settings) -> str:

    lake = s.lake()
    catalogue = lake.read("catalogue", "datasets")
    log = lake.read(*COLLECT_LOG.path)
    out = ["", "shucang — what the warehouse holds now", ""]
    if catalogue is None:
        return "\n".join([*out, "  nothing yet: run `make demo`"])
    files = (
        log.group_by("dataset").agg(
            (pl.col("status") == "landed").sum().alias("landed"),
            (pl.col("status") == "rejected").sum().alias("rejected"),
        )
        if log is not None
        else pl.DataFrame(schema={"dataset": pl.String, "landed": pl.UInt32, "rejected": pl.UInt32})
    )
    raw = (
        catalogue.filter(pl.col("zone") == "raw")
        .join(files, left_on="dataset_id", right_on="dataset", how="left")
        .sort("dataset_id")
    )
    out.append(f"  {'dataset':<24}{_pad('名称', 22)}{'rows':>10}{'version':>9}{'files':>7}{'rejected':>10}")
    for r in raw.iter_rows(named=True):
        out.append(
            f"  {_where(r):<24}{_pad(r['name_zh'], 22)}{r['row_count'] or 0:>10,}"
            f"{_version(r)}{r['landed'] or 0:>7}{r['rejected'] or 0:>10}"
        )
    out.append(f"  {'total raw':<46}{int(raw['row_count'].fill_null(0).sum()):>10,}")
    out += _collection_section(lake)
    out += ["", _std_section(lake, catalogue), "", _privacy_section(s, lake, catalogue)]
    out += ["", _publish_section(lake, catalogue), "", exchange_section(s)]
    if log is not None and (rej := log.filter(pl.col("status") == "rejected")).height:
        out += ["", f"  rejected files ({rej.height}) — moved to {s.rejected_root}, each with a .reason.json:"]
        for r in rej.sort("file").iter_rows(named=True):
            out.append(
                f"    ✗ {r['file']}\n        {r['reason_zh']} / {r['reason_en']}: {r['detail']} "
                f"(at {r['position']}; rows {r['rows_read'] if r['rows_read'] is not None else 'unknown'})"
            )
    out += [
        "",
        f"  lake:       {s.lake_root}",
        f"  catalogue:  {s.lake().uri('catalogue', CATALOGUE_EXPORT)}",
        f"  landing:    {s.landing_bucket + f' (mirrored in {s.landing_root})' if s.landing_bucket else s.landing_root}",
        "  Dagster UI: make ui  →  http://127.0.0.1:3000",
        "  steward console: make console  →  http://127.0.0.1:3100 (passwords: .venv/bin/python -m console demo-users)",
        "",
    ]
    return "\n".join(out)


def _version(r: dict) -> str:
    return f"{r['delta_version'] if r['delta_version'] is not None else '-':>9}"


def _std_section(lake, catalogue: pl.DataFrame) -> str:
    """std: rows kept, rows quarantined (with a reason in quarantine/findings), duplicates merged."""
    findings = lake.read(*FINDINGS.path)
    dups = lake.read(*DUPLICATES.path)
    quarantined = (
        findings.filter(pl.col("action") == "quarantined")
        .unique(["dataset", "source_file", "row_number"])
        .group_by("dataset")
        .len("quarantined")
        if findings is not None
        else None
    )
    merged = dups.group_by("dataset").len("merged") if dups is not None else None
    std = catalogue.filter(pl.col("zone") == "std").sort("dataset_id")
    for extra in (quarantined, merged):
        if extra is not None:
            std = std.join(extra, left_on="dataset_id", right_on="dataset", how="left")
    lines = [f"  {'dataset':<24}{_pad('名称', 22)}{'rows':>10}{'version':>9}{'quarantined':>13}{'merged':>8}"]
    for r in std.iter_rows(named=True):
        lines.append(
            f"  {_where(r):<24}{_pad(r['name_zh'], 22)}{r['row_count'] or 0:>10,}{_version(r)}"
            f"{r.get('quarantined') or 0:>13,}{r.get('merged') or 0:>8,}"
        )
    return "\n".join(lines)


def _privacy_section(s: Settings, lake, catalogue: pl.DataFrame) -> str:
    """What the privacy stage did: the grade of each zone's dataset, what std transformed, the audit log."""
    columns = lake.read("catalogue", "columns")
    out = ["  privacy (分类分级, std zone policy)"]
    if columns is not None and "privacy_transform" in columns.columns:
        done = columns.filter((pl.col("zone") == "std") & pl.col("privacy_transform").is_not_null())
        for (ds,), group in done.sort("dataset_id", "position").group_by("dataset_id", maintain_order=True):
            grades = catalogue.filter(pl.col("dataset_id") == ds).select("zone", "grade").rows()
            what = ", ".join(f"{r['column']} ({r['privacy_transform']})" for r in group.iter_rows(named=True))
            out.append(f"    {ds:<20} {' → '.join(f'{z} {g}' for z, g in sorted(grades))}: {what}")
    verdict = AuditLog(s.audit_log).verify()
    out.append(
        f"    audit log {s.audit_log}: {verdict.entries} entries, "
        + ("chain intact" if verdict.ok else f"TAMPERED — {verdict.problem}")
    )
    out.append(f"    keys      {s.key_file} (outside the repository and the lake)")
    return "\n".join(out)


def _publish_section(lake, catalogue: pl.DataFrame) -> str:
    """The publish zone (共享库): what dbt modelled and the gates let through, and the 亩均 bands."""
    # the publish zone's datasets, not the warehouse's own change log beside them
    published = catalogue.filter((pl.col("zone") == "publish") & (pl.col("source_department") != "warehouse"))
    published = published.sort("dataset_id")
    if published.height == 0:
        return "  publish zone: nothing published yet"
    out = [
        "  publish zone (共享库) — public dbt models through their quality and privacy gates, and the sharing statistics",
        "",
    ]
    out.append(f"  {'dataset':<46}{_pad('名称', 24)}{'rows':>9}{'version':>9}{'grade':>7}")
    for r in published.iter_rows(named=True):
        out.append(
            f"  {_where(r):<46}{_pad(r['name_zh'], 24)}{r['row_count'] or 0:>9,}{_version(r)}{r['grade'] or '-':>7}"
        )
    evaluation = lake.read("publish", "topic_mujun_evaluation")
    if evaluation is not None:
        bands = evaluation.group_by("scale_group", "band").len().sort("scale_group", "band", nulls_last=True)
        parts = {
            g: ", ".join(f"{b or '不参评'} {n}" for b, n in zip(grp["band"], grp["len"], strict=True))
            for (g,), grp in bands.group_by("scale_group", maintain_order=True)
        }
        out += ["", "  亩均效益综合评价 (topic_mujun_evaluation): " + "; ".join(f"{g}: {v}" for g, v in parts.items())]
    return "\n".join(out)


def _pad(text: str, width: int) -> str:
    """Left-align text whose CJK characters take two terminal columns."""
    shown = sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
    return text + " " * max(1, width - shown)


def exchange_section(s: Settings) -> str:
    ledger = Ledger(s.exchange_dir / "ledger.jsonl", anchor=AuditLog(s.audit_log))
    states = ledger.states()
    if not states:
        return "  exchange: no data request yet (drop a YAML request in " + str(s.exchange_dir / "inbox") + ")"
    verdict = ledger.verify()
    out = ["  exchange (交换区) — data requests, their shares and the ledger", ""]
    out.append(f"  {'request':<22}{_pad('申请方', 26)}{'grade':>6}  {'status':<10}{'rows':>8}  reason")
    for r in sorted(states.values(), key=lambda r: r.id):
        rows = sum(t["rows"] for t in r.manifest["tables"]) if r.manifest else 0
        out.append(
            f"  {r.id:<22}{_pad(r.request['consumer']['name'], 26)}{r.level or '-':>6}  {r.status:<10}{rows:>8,}  "
            f"{(r.reasons[-1] if r.reasons else '')[:60]}"
        )
    profiles = sorted((s.exchange_dir / "profiles").glob("*.share"))
    out += [
        "",
        f"  ledger:     {ledger.path} — {verdict.entries} entries, "
        + ("chain verifies" if verdict.ok else f"BROKEN: {verdict.problem}"),
        f"  profiles:   {', '.join(p.name for p in profiles) or 'none'} in {s.exchange_dir / 'profiles'} (hand each to its consumer)",
        f"  sharing:    make share-server  →  {s.sharing_endpoint}",
    ]
    return "\n".join(out)
