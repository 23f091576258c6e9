"""自评 — the data section of the industry brain's annual self-assessment, as HTML and PDF with charts.

Everything is read from what the warehouse keeps: the catalogue (datasets by zone and grade), the 归集 record
(``ops/collection_rate``: deliveries expected, on time, late, rejected, missing per department and month), the
GB/T 36344 score history (``quality/scores``), the enterprise master, the 亩均 evaluation and its completeness
(``publish/topic_mujun_*``) and the exchange's statistics (``publish/sharing_statistics``). ``gather`` turns them
into sections of figures, tables and charts; ``html`` and ``pdf`` render the same sections — the charts are one
SVG each, inline in the HTML and drawn as vector graphics in the PDF (fpdf2), with a CJK font embedded (Noto
Sans CJK from the machine: Debian ``fonts-noto-cjk``, or ``SHUCANG_CJK_FONT``). Plain code over the lake.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from lakehouse.lake import Lake

ZONES = ("raw", "std", "base", "theme", "topic", "publish", "ops", "quality", "quarantine", "catalogue", "share")
GRADES = ("L1", "L2", "L3", "L4")
PALETTE = ("#2f6f9f", "#4c9f70", "#d08c2f", "#b5443b", "#7b5ea7", "#6b7b8c")
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
)
SC_IN_COLLECTION = 2  # Noto Sans CJK .ttc: JP, KR, SC, TC, HK — the simplified Chinese face


class AssessmentError(RuntimeError):
    """The report cannot be made; the message says why and what to do."""


@dataclass
class Chart:
    """A bar chart (grouped bars per label) or a line chart, in percent or counts."""

    title: str
    labels: list[str]
    series: dict[str, list[float | None]]
    kind: str = "bar"  # bar | line
    max_value: float | None = None

    def svg(self, font: str, width: int = 640, height: int = 260, size: tuple[str, str] | None = None) -> str:
        """The chart as SVG in a ``width`` × ``height`` user space; ``size``: the drawn width and height (with
        units, e.g. ('180mm', '73mm')) when not those pixels."""
        left, right, top, bottom = 48, 12, 28, 58
        w, h = width - left - right, height - top - bottom
        values = [v for s in self.series.values() for v in s if v is not None]
        top_value = self.max_value or (max(values) if values else 1.0) or 1.0
        esc = html_lib.escape
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{size[0] if size else width}" '
            f'height="{size[1] if size else height}" '
            f'viewBox="0 0 {width} {height}" font-family="{font}">',
            f'<text x="{left}" y="16" font-size="13" fill="#222">{esc(self.title)}</text>',
            f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#888" stroke-width="1"/>',
        ]
        for k in range(5):  # gridlines and the value axis
            v = top_value * k / 4
            y = top + h - h * k / 4
            out.append(
                f'<line x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" stroke="#ddd" stroke-width="0.5"/>'
            )
            out.append(
                f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="9" fill="#555" text-anchor="end">{v:.0f}</text>'
            )
        n = max(len(self.labels), 1)
        slot = w / n
        for i, label in enumerate(self.labels):
            x = left + slot * (i + 0.5)
            out.append(
                f'<text x="{x:.1f}" y="{top + h + 14}" font-size="9" fill="#333" text-anchor="middle">'
                f"{esc(label[:10])}</text>"
            )
        names = list(self.series)
        if self.kind == "bar":
            bar = slot * 0.8 / max(len(names), 1)
            for j, name in enumerate(names):
                for i, v in enumerate(self.series[name]):
                    if v is None:
                        continue
                    bh = h * min(v, top_value) / top_value
                    x = left + slot * i + slot * 0.1 + bar * j
                    out.append(
                        f'<rect x="{x:.1f}" y="{top + h - bh:.1f}" width="{bar:.1f}" height="{bh:.1f}" '
                        f'fill="{PALETTE[j % len(PALETTE)]}"/>'
                    )
        else:
            for j, name in enumerate(names):
                points = [
                    (left + slot * (i + 0.5), top + h - h * min(v, top_value) / top_value)
                    for i, v in enumerate(self.series[name])
                    if v is not None
                ]
                color = PALETTE[j % len(PALETTE)]
                if len(points) > 1:
                    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
                    out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
                for x, y in points:
                    out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
        for j, name in enumerate(names):  # legend
            x = left + 110 * j
            out.append(f'<rect x="{x}" y="{height - 18}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>')
            out.append(f'<text x="{x + 14}" y="{height - 9}" font-size="9" fill="#333">{esc(name)}</text>')
        out.append("</svg>")
        return "".join(out)


@dataclass
class Section:
    title: str
    summary: list[str]  # sentences with the section's key figures
    table: tuple[list[str], list[list[str]]]  # header, rows
    charts: list[Chart] = field(default_factory=list)


@dataclass
class Assessment:
    year: int
    made_at: dt.datetime
    sections: list[Section]


def _read(lake: Lake, zone: str, name: str) -> pl.DataFrame | None:
    return lake.read(zone, name)


def _required(lake: Lake, zone: str, name: str, missing: str) -> pl.DataFrame:
    """The table, or the refusal ``missing`` (what to run first) when it does not exist or is empty."""
    frame = lake.read(zone, name)
    if frame is None or frame.height == 0:
        raise AssessmentError(missing)
    return frame


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _catalogue(lake: Lake) -> Section:
    entries = _required(
        lake, "catalogue", "datasets", "the catalogue is empty: materialise catalogue/datasets (make demo) first"
    )
    by = entries.group_by("zone", "grade").len()
    zones = [z for z in ZONES if z in set(entries["zone"])] + sorted(set(entries["zone"]) - set(ZONES))
    cell = {(z, g): n for z, g, n in by.iter_rows()}
    rows = [
        [z, *(str(cell.get((z, g), 0)) for g in GRADES), str(sum(cell.get((z, g), 0) for g in GRADES))] for z in zones
    ]
    total = entries.height
    return Section(
        "一、数据资源目录 Datasets catalogued",
        [
            f"数据目录共编目 {total} 个数据集，分布于 {len(zones)} 个区（原始、标准、主题、专题、发布等）；",
            f"按 DB33/T 2351 分级：L1 {entries.filter(pl.col('grade') == 'L1').height} 个，"
            f"L2 {entries.filter(pl.col('grade') == 'L2').height} 个，L3 {entries.filter(pl.col('grade') == 'L3').height} 个，"
            f"L4 {entries.filter(pl.col('grade') == 'L4').height} 个。",
        ],
        (["区 Zone", *GRADES, "合计 Total"], rows),
        [Chart("各区数据集数（按分级）", zones, {g: [float(cell.get((z, g), 0)) for z in zones] for g in GRADES})],
    )


def _collection(lake: Lake, year: int) -> Section:
    rate = _required(
        lake, "ops", "collection_rate", "no 归集 record: materialise ops/collection_status (make demo) first"
    )
    # deliveries from the year's first month on: the year's annual data is due in the months after it
    rate = rate.filter(pl.col("month") >= f"{year}-01")
    window = f"{rate['month'].min()}–{rate['month'].max()}" if rate.height else str(year)
    per = (
        rate.group_by("department", "department_name")
        .agg(pl.col("expected", "on_time", "late", "rejected", "missing").sum())
        .with_columns((pl.col("on_time") / pl.col("expected")).alias("rate"))
        .sort("department")
    )
    expected, on_time = int(per["expected"].sum()), int(per["on_time"].sum())
    rows = [
        [name, str(e), str(o), str(la), str(rj), str(m), _pct(r)]
        for _, name, e, o, la, rj, m, r in per.select(
            "department", "department_name", "expected", "on_time", "late", "rejected", "missing", "rate"
        ).iter_rows()
    ]
    return Section(
        "二、数据归集 Collection",
        [
            f"{window}（交付月份）应归集 {expected} 批次，按时到达 {on_time} 批次，"
            f"归集率 {_pct(on_time / expected if expected else None)}；",
            f"迟到 {int(per['late'].sum())} 批次，被拒收 {int(per['rejected'].sum())} 批次，缺失 {int(per['missing'].sum())} 批次"
            "（被拒文件原样留存并附原因，问题清单已回送数源单位）。",
        ],
        (["数源单位 Department", "应归集", "按时", "迟到", "拒收", "缺失", "归集率"], rows),
        [
            Chart(
                "各部门归集率（%）",
                [d for d in per["department"]],
                {"归集率": [100 * r if r is not None else None for r in per["rate"]]},
                max_value=100.0,
            )
        ],
    )


def _quality(lake: Lake) -> Section:
    scores = _required(lake, "quality", "scores", "no quality scores: run the std builds (make demo) first")
    dept = scores.filter(pl.col("level") == "department")
    latest = dept.sort("scored_at").group_by("subject").last().sort("subject")
    trend = (
        dept.with_columns(pl.col("scored_at").dt.date().alias("day"))
        .group_by("day")
        .agg(pl.col("overall").mean())
        .sort("day")
    )
    dims = ["规范性", "完整性", "准确性", "一致性", "时效性", "可访问性"]
    rows = [
        [s, *(f"{v:.1f}" if v is not None else "—" for v in (r[d] for d in dims)), f"{r['overall']:.1f}"]
        for s, r in ((r["subject"], r) for r in latest.iter_rows(named=True))
    ]
    return Section(
        "三、数据质量 Quality (GB/T 36344)",
        [
            f"各部门数据质量综合得分平均 {latest['overall'].mean():.1f} 分（最低 {latest['overall'].min():.1f}，"
            f"最高 {latest['overall'].max():.1f}）；共 {trend.height} 个评分日的历史趋势见下图。",
        ],
        (["部门 Department", *dims, "综合 Overall"], rows),
        [
            Chart(
                "各部门最新综合得分", list(latest["subject"]), {"综合得分": list(latest["overall"])}, max_value=100.0
            ),
            Chart(
                "质量得分趋势（部门平均）",
                [d.isoformat() for d in trend["day"]],
                {"平均综合得分": list(trend["overall"])},
                kind="line",
                max_value=100.0,
            ),
        ],
    )


def _enterprises(lake: Lake) -> Section:
    master = _required(
        lake, "publish", "base_enterprise", "no enterprise master: publish base_enterprise (make demo) first"
    )
    by_sources = master.group_by("source_count").len().sort("source_count")
    by_county = master.group_by("region_code").len().sort("region_code")
    registered = master.filter(pl.col("registration_source").is_not_null()).height
    rows = [[str(c), str(n)] for c, n in by_sources.iter_rows()]
    return Section(
        "四、企业覆盖 Enterprises",
        [
            f"企业主数据覆盖 {master.height} 家企业，其中 {registered} 家有市场监管登记信息"
            f"（{_pct(registered / master.height)}）；{master.filter(pl.col('scale_type') == '规上').height} 家规上企业。",
            f"按区县：{'，'.join(f'{c} {n} 家' for c, n in by_county.iter_rows())}。",
        ],
        (["数据来源部门数 Sources", "企业数 Enterprises"], rows),
        [
            Chart(
                "企业按数据来源部门数分布",
                [str(c) for c in by_sources["source_count"]],
                {"企业数": [float(n) for n in by_sources["len"]]},
            )
        ],
    )


def _mujun(lake: Lake, year: int) -> Section:
    ev = _required(
        lake,
        "publish",
        "topic_mujun_evaluation",
        "no 亩均 evaluation: publish topic_mujun_evaluation (make demo) first",
    )
    ev = ev.filter(pl.col("year") == year)
    status = dict(ev.group_by("evaluation_status").len().iter_rows()) if "evaluation_status" in ev.columns else {}
    bands = dict(ev.group_by("band").len().drop_nulls().iter_rows())
    evaluable = ev.filter(pl.col("exempt_reason").is_null()).height
    banded = sum(bands.values())
    rows = [[b, str(bands.get(b, 0)), _pct(bands.get(b, 0) / banded if banded else None)] for b in ("A", "B", "C", "D")]
    return Section(
        "五、亩均效益评价 亩均 evaluation",
        [
            f"{year} 年参评企业 {evaluable} 家，已评档 {banded} 家（覆盖 {_pct(banded / evaluable if evaluable else None)}），"
            f"待核实 {status.get('待核实', 0)} 家（输入不完整且档次不能确定，原因逐家列明），不参评 {status.get('不参评', 0)} 家。",
        ],
        (["档次 Band", "企业数", "占已评档"], rows),
        [
            Chart(
                "亩均评价档次分布",
                ["A", "B", "C", "D"],
                {"企业数": [float(bands.get(b, 0)) for b in ("A", "B", "C", "D")]},
            )
        ],
    )


def _sharing(lake: Lake) -> Section:
    stats = _read(lake, "publish", "sharing_statistics")
    if stats is None:
        stats = pl.DataFrame(
            schema={
                "department": pl.String,
                "requests": pl.Int64,
                "approved": pl.Int64,
                "active_shares": pl.Int64,
                "reads": pl.Int64,
            }
        )
    per = (
        stats.group_by("department")
        .agg(pl.col("requests", "approved", "active_shares", "reads").sum())
        .sort("department")
        if stats.height
        else stats
    )
    rows = [
        [d, str(r), str(a), str(s), str(n)]
        for d, r, a, s, n in per.select("department", "requests", "approved", "active_shares", "reads").iter_rows()
    ]
    return Section(
        "六、数据共享 Requests, shares and reads",
        [
            f"共受理数据申请 {int(per['requests'].sum()) if per.height else 0} 件，批准 {int(per['approved'].sum()) if per.height else 0} 件，"
            f"现有有效共享 {int(per['active_shares'].sum()) if per.height else 0} 个，读取 {int(per['reads'].sum()) if per.height else 0} 次。",
        ],
        (["申请部门 Department", "申请", "批准", "有效共享", "读取次数"], rows),
        [
            Chart(
                "各部门数据申请与共享",
                list(per["department"]) if per.height else [],
                {
                    k: [float(v) for v in per[c]]
                    for k, c in (("申请", "requests"), ("批准", "approved"), ("有效共享", "active_shares"))
                }
                if per.height
                else {},
            )
        ],
    )


def gather(lake: Lake, year: int, now: dt.datetime | None = None) -> Assessment:
    """The sections of the report for ``year``, from the lake as it stands."""
    return Assessment(
        year,
        now or dt.datetime.now(dt.UTC),
        [
            _catalogue(lake),
            _collection(lake, year),
            _quality(lake),
            _enterprises(lake),
            _mujun(lake, year),
            _sharing(lake),
        ],
    )


def html(a: Assessment) -> str:
    esc = html_lib.escape
    font = "'Noto Sans CJK SC','Noto Sans SC','Source Han Sans SC',sans-serif"
    parts = [
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>",
        f"<title>{a.year} 年度行业产业大脑自评 · 数据部分</title>",
        "<style>body{font-family:" + font + ";margin:2em auto;max-width:60em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.2em .6em;text-align:right}"
        "td:first-child,th:first-child{text-align:left}h2{border-bottom:2px solid #2f6f9f;margin-top:2em}</style></head><body>",
        f"<h1>{a.year} 年度行业产业大脑自评 · 数据部分</h1>",
        f"<p>台州市黄岩区行业数据仓 · 生成于 {a.made_at:%Y-%m-%d %H:%M} UTC · 数据取自数据仓当前版本</p>",
    ]
    for s in a.sections:
        parts.append(f"<section><h2>{esc(s.title)}</h2>")
        parts += [f"<p>{esc(p)}</p>" for p in s.summary]
        header, rows = s.table
        parts.append("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>")
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</tbody></table>")
        parts += [f"<figure>{c.svg(font)}</figure>" for c in s.charts]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def cjk_font() -> Path:
    given = os.environ.get("SHUCANG_CJK_FONT")
    for candidate in ([given] if given else []) + list(FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise AssessmentError(
        "the PDF needs a Chinese font to embed and none was found: install Debian's fonts-noto-cjk, or set "
        "SHUCANG_CJK_FONT to a .ttc/.otf/.ttf file"
    )


def pdf(a: Assessment, font_file: Path | None = None) -> bytes:
    """The report as PDF: a cover page with the summary, then one page per section (figures, table, charts)."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace
    from fpdf.svg import SVGObject

    font_file = font_file or cjk_font()
    doc = FPDF(format="A4")
    doc.set_auto_page_break(True, margin=15)
    collection = SC_IN_COLLECTION if font_file.suffix.lower() == ".ttc" else 0
    doc.add_font("cjk", fname=str(font_file), collection_font_number=collection)
    doc.set_title(f"{a.year} 年度行业产业大脑自评 · 数据部分")
    doc.add_page()
    doc.set_font("cjk", size=20)
    doc.multi_cell(0, 12, f"{a.year} 年度行业产业大脑自评 · 数据部分", new_x="LMARGIN", new_y="NEXT")
    doc.set_font("cjk", size=10)
    doc.multi_cell(
        0, 6, f"台州市黄岩区行业数据仓 · 生成于 {a.made_at:%Y-%m-%d %H:%M} UTC", new_x="LMARGIN", new_y="NEXT"
    )
    doc.ln(4)

    def heading(s: Section, size: int, height: int) -> None:
        doc.set_font("cjk", size=size)
        doc.multi_cell(0, height, s.title, new_x="LMARGIN", new_y="NEXT")
        doc.set_font("cjk", size=9)
        for p in s.summary:
            doc.multi_cell(0, 5, p, new_x="LMARGIN", new_y="NEXT")

    for s in a.sections:  # the cover: every section's figures
        heading(s, 11, 6)
        doc.ln(1)
    for s in a.sections:  # then a page each, with its table and charts
        doc.add_page()
        heading(s, 14, 8)
        doc.ln(2)
        header, rows = s.table
        headings = FontFace(emphasis="", fill_color=(228, 236, 244))  # one face of the CJK font: no bold
        with doc.table(text_align="CENTER", line_height=5, headings_style=headings) as table:
            table.row(header)
            for r in rows:
                table.row(r)
        for c in s.charts:
            height_mm = doc.epw * 260 / 640
            if doc.get_y() + height_mm > doc.h - doc.b_margin:
                doc.add_page()
            doc.ln(3)
            y = doc.get_y()
            SVGObject(c.svg("cjk", size=(f"{doc.epw:.1f}mm", f"{height_mm:.1f}mm"))).draw_to_page(
                doc, x=doc.l_margin, y=y
            )
            doc.set_y(y + height_mm + 2)
    return bytes(doc.output())


def write(a: Assessment, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"自评_数据_{a.year}"
    page, document = out / f"{stem}.html", out / f"{stem}.pdf"
    page.write_text(html(a), encoding="utf-8")
    document.write_bytes(pdf(a))
    return page, document
