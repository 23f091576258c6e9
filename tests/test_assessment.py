"""自评: the data section of the annual self-assessment, written by one command on the demo's lake as HTML and
PDF, checked page by page — the text is there and says what the lake holds, the charts are drawn."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader

from console import assessment
from console.assessment import PALETTE
from lakehouse.lake import Lake

TITLES = ("数据资源目录", "数据归集", "数据质量", "企业覆盖", "亩均效益评价", "数据共享")


@pytest.fixture(scope="module")
def report(demo_site, tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("assessment")
    done = subprocess.run(
        [sys.executable, "-m", "console", "assessment", "--year", "2023", "--out", str(out)],
        cwd=Path(__file__).resolve().parent.parent,
        env=demo_site.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "自评_数据_2023.html", out / "自评_数据_2023.pdf"


def _text(page) -> str:
    return page.extract_text().replace("\x00", "")


def _chart_pixels(document: Path, index: int) -> int:
    """Pixels of the chart colours on a page rendered at 72 dpi."""
    image = pdfium.PdfDocument(str(document))[index].render(scale=1).to_pil().convert("RGB")
    colours = {tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in PALETTE}
    return sum(n for n, rgb in image.getcolors(1 << 20) if rgb in colours)


@pytest.mark.integration
def test_the_pdf_has_a_cover_and_a_page_per_section_each_with_its_figures_and_a_drawn_chart(report, demo_site):
    _, document = report
    pages = PdfReader(str(document)).pages
    assert len(pages) >= 1 + len(TITLES)
    cover = _text(pages[0])
    assert "年度行业产业大脑自评" in cover and all(t in cover for t in TITLES)
    # each section opens its own page, in order, with its chart drawn there (bars or lines in the palette)
    opened = {
        t: next(i for i, p in enumerate(pages) if i > 0 and _text(p).lstrip().startswith("一二三四五六"[k]))
        for k, t in enumerate(TITLES)
    }
    assert list(opened.values()) == sorted(opened.values())
    for title, index in opened.items():
        assert title in _text(pages[index]), title
        assert _chart_pixels(document, index) > 400, f"{title}: no chart drawn on page {index + 1}"
    # the figures are the lake's: the 亩均 band counts and the enterprises covered
    lake = demo_site.lake
    ev = pl.read_delta(str(lake / "publish" / "topic_mujun_evaluation")).filter(pl.col("year") == 2023)
    mujun = _text(pages[opened["亩均效益评价"]])
    for band in ("A", "B", "C", "D"):
        assert f"{band} {ev.filter(pl.col('band') == band).height} " in mujun
    assert f"待核实 {ev.filter(pl.col('evaluation_status') == '待核实').height} 家" in mujun.replace("  ", " ")
    master = pl.read_delta(str(lake / "publish" / "base_enterprise"))
    assert f"覆盖 {master.height} 家企业" in _text(pages[opened["企业覆盖"]]).replace("  ", " ")
    rate = pl.read_delta(str(lake / "ops" / "collection_rate")).filter(pl.col("month") >= "2023-01")
    assert f"应归集 {rate['expected'].sum()} 批次" in _text(pages[opened["数据归集"]]).replace("  ", " ")


@pytest.mark.integration
def test_the_html_holds_the_same_sections_with_inline_charts_and_no_outside_resource(report):
    page, _ = report
    text = page.read_text(encoding="utf-8")
    assert all(t in text for t in TITLES)
    assert text.count("<svg") >= len(TITLES) and "<rect" in text and "<circle" in text  # bars; the trend's points
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text


def test_an_empty_lake_or_a_machine_without_a_chinese_font_is_refused_with_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(assessment.AssessmentError, match="make demo"):
        assessment.gather(Lake(str(tmp_path / "lake")), 2023)
    monkeypatch.setattr(assessment, "FONT_CANDIDATES", ())
    monkeypatch.setenv("SHUCANG_CJK_FONT", str(tmp_path / "nowhere.ttc"))
    with pytest.raises(assessment.AssessmentError, match="fonts-noto-cjk"):
        assessment.cjk_font()


def test_a_chart_scales_its_bars_to_the_largest_value_and_escapes_its_labels():
    chart = assessment.Chart("<b>归集率</b>", ["税务", "电力"], {"率": [100.0, 50.0]}, max_value=100.0)
    svg = chart.svg("sans-serif")
    heights = [float(h) for h in re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([0-9.]+)"', svg)]
    assert heights[:2] == [174.0, 87.0]  # 100% fills the plot (260 − 28 − 58 px), 50% half of it
    assert "<b>" not in svg and "&lt;b&gt;归集率&lt;/b&gt;" in svg
