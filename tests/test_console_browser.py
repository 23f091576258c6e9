"""The steward console in a real browser: Debian's chromium driven by Playwright (launched with the system
executable — never `playwright install`), against the console server started on the demo's data. One test per
steward task, refusals included; each saves a screenshot under tests/artifacts/console/."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("SHUCANG_TEST_ARTIFACTS", ROOT / "tests" / "artifacts")) / "console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DAGSTER = "http://127.0.0.1:3999"  # where the console links to (the UI need not run for the links' targets)
PASSWORDS = {
    "demo-steward": "steward-pass-2026",
    "demo-modeler": "modeler-pass-2026",
    "huangyan-mujun": "consumer-pass-2026",
    "bank-credit-app": "consumer2-pass-2026",
}
RAW_ID = re.compile(r"\b\d{17}[\dX]\b")  # an 18-character resident ID number as delivered


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(demo_site):
    from exchange.identity import IdentityError, Principals

    reg = Principals(demo_site.data / "exchange" / "principals.json")
    try:
        reg.add_modeler("demo-modeler", "演示模型开发者", "区大数据中心")
    except IdentityError:
        pass  # registered by an earlier module of this session
    for who, password in PASSWORDS.items():
        reg.set_password(who, password)
    port = _free_port()
    env = {**demo_site.env, "SHUCANG_DAGSTER_URL": DAGSTER}
    proc = subprocess.Popen(
        [sys.executable, "-m", "console", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"the console did not start: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.3)
    try:
        yield base, demo_site
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Visit:
    """One signed-in browser context at 1366×768 that records every URL the pages load."""

    def __init__(self, browser, base: str, who: str | None):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()
        self.loaded: list[str] = []
        self.page.on("request", lambda r: self.loaded.append(r.url))
        if who:
            self.sign_in(who, PASSWORDS[who])

    def sign_in(self, who: str, password: str):
        self.page.goto(f"{self.base}/login")
        self.page.fill("input[name=id]", who)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        return self.page

    def go(self, path: str):
        response = self.page.goto(f"{self.base}{path}")
        return response

    def shot(self, name: str):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)

    def close(self):
        self.context.close()


@pytest.fixture
def visit(site, browser):
    base, _ = site
    opened: list[Visit] = []

    def open_(who: str | None) -> Visit:
        v = Visit(browser, base, who)
        opened.append(v)
        return v

    yield open_
    for v in opened:
        # nothing a page loaded came from anywhere but the console (no CDN, no web font service)
        assert all(u.startswith(base) or u.startswith("data:") for u in v.loaded), [
            u for u in v.loaded if not u.startswith(base)
        ]
        v.close()


def _audit(demo_site) -> list[dict]:
    path = Path(demo_site.env["SHUCANG_AUDIT_LOG"])
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_sign_in_refuses_a_wrong_password_and_a_form_without_its_csrf_token(site, visit):
    v = visit(None)
    page = v.sign_in("demo-steward", "not-the-password")
    assert "账号或密码错误" in page.inner_text(".error")
    assert "/login" in page.url
    v.shot("sign-in-refused")
    page = v.sign_in("demo-steward", PASSWORDS["demo-steward"])
    assert page.url.endswith("/catalogue") and "演示数据管理员" in page.inner_text("header")
    # a cross-site form: the session cookie alone (SameSite aside) does not make a POST valid
    forged = v.context.request.post(
        f"{site[0]}/requests/operations-bank/decide", form={"decision": "approved", "reason": "x"}
    )
    assert forged.status == 403 and "CSRF" in forged.text()
    # signing out ends the session: the next page asks for a sign-in again
    page.click("header form button")
    v.go("/quarantine")
    assert "/login" in page.url and "next=" in page.url
    v.shot("signed-out")


def test_catalogue_search_in_chinese_and_english_with_facets(visit):
    v = visit("demo-steward")
    page = v.page
    v.go("/catalogue?q=登记")
    names = page.locator(".results tbody tr").all_inner_texts()
    assert any("企业登记信息" in n and "raw/amr_registration" in n for n in names)
    assert any("std/amr_registration" in n for n in names)
    page.click(".facets li a:text-is('std')")
    names = page.locator(".results tbody tr").all_inner_texts()
    assert names and all("std/" in n for n in names)
    v.shot("catalogue-search-zh-facet")
    v.go("/catalogue?q=registration")
    assert "企业登记信息" in page.inner_text(".results")
    # by a column, a department in Chinese, a grade and the 共享属性
    v.go("/catalogue?q=legal_rep_id_no")
    assert "amr_registration" in page.inner_text(".results")
    v.go("/catalogue?q=市场监督管理局&grade=L4")
    rows = page.locator(".results tbody tr").all_inner_texts()
    assert rows and all("L4" in r for r in rows)
    v.go("/catalogue?share_type=无条件共享")
    rows = page.locator(".results tbody tr").all_inner_texts()
    assert rows and all("无条件共享" in r for r in rows)
    # the page fits a 1366×768 screen: nothing wider than the window
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    v.shot("catalogue-1366")


def test_a_modeler_previews_std_with_identifiers_pseudonymised_and_cannot_open_raw(visit, site):
    v = visit("demo-modeler")
    page = v.page
    v.go("/datasets/std/amr_registration")
    assert "字段" in page.inner_text("main") and "有效分级" in page.inner_text("main")
    preview = page.inner_text("#preview")
    assert "k1:" in preview and not RAW_ID.search(preview)
    # effective grade of the pseudonymised ID column, and the link to its Dagster asset and runs
    row = page.locator("tr", has=page.locator("code:text-is('legal_rep_id_no')")).inner_text()
    assert "pseudonymise" in row
    assert page.get_attribute("a:has-text('Dagster 资产')", "href") == f"{DAGSTER}/assets/std/amr_registration"
    v.shot("modeler-std-preview")
    response = v.go("/datasets/raw/amr_registration")
    assert response.status == 403 and "无权" in page.inner_text(".error")
    v.shot("modeler-raw-refused")
    assert v.go("/quarantine").status == 403


def test_a_steward_reads_raw_only_with_a_reason_and_it_is_audited(visit, site):
    _, demo = site
    v = visit("demo-steward")
    page = v.page
    v.go("/datasets/raw/amr_registration")
    assert page.locator("#preview table").count() == 0  # nothing shown before a reason is given
    page.click("#preview button[type=submit]")
    assert "需填写事由" in page.inner_text("#preview .error")
    page.fill("#preview input[name=reason]", "核对市场监管局退回整改的证件号码")
    page.click("#preview button[type=submit]")
    preview = page.inner_text("#preview")
    assert RAW_ID.search(preview), "raw shows the ID numbers as delivered"
    assert "核对市场监管局退回整改的证件号码" in preview
    entry = [e for e in _audit(demo) if e["action"] == "console.preview"][-1]
    assert entry["actor"] == "steward:demo-steward" and entry["detail"]["reason"] == "核对市场监管局退回整改的证件号码"
    v.shot("steward-raw-audited")


def test_the_quarantine_shows_rule_reason_and_masked_values_and_problem_lists_download(visit, site):
    _, demo = site
    v = visit("demo-steward")
    page = v.page
    v.go("/quarantine")
    page.select_option("select[name=dataset]", "amr_registration")
    page.click("form.search button")
    table = page.inner_text("#findings")
    assert "amr_registration" in table and "原因" in table
    assert not RAW_ID.search(table), "delivered ID numbers are masked"
    findings = pl.read_delta(str(demo.lake / "quarantine" / "findings")).filter(pl.col("dataset") == "amr_registration")
    assert f"{findings.height} 条" in page.inner_text("main")
    assert "待整改" in table  # the rectification status from the problem ledger
    v.shot("quarantine-amr")
    with page.expect_download() as xlsx:
        page.click(".downloads a[href$='.xlsx'] >> nth=0")
    path = xlsx.value.path()
    assert Path(path).read_bytes()[:2] == b"PK"  # an XLSX (zip) file
    csv_link = page.locator(".downloads a[href$='.csv']").first.get_attribute("href")
    body = v.context.request.get(site[0] + csv_link)
    assert body.status == 200 and "text/csv" in body.headers["content-type"]
    assert any(e["action"] == "console.problem_list" for e in _audit(demo))


def test_a_steward_decides_a_request_with_a_reason_and_the_ledger_records_who(visit, site):
    _, demo = site
    v = visit("demo-steward")
    page = v.page
    v.go("/requests")
    assert "operations-bank" in page.inner_text("#requests")
    page.click("a:text-is('operations-bank')")
    facts = page.inner_text("dl.facts")
    assert "法律依据" in facts and "用途" in facts and "计算分级" in facts and "L2" in facts
    # an approval without a reason is refused, and the request stays pending
    page.click("button[value=approved]")
    assert "须填写理由" in page.inner_text(".error")
    assert "pending" in page.inner_text("h1")
    v.shot("decision-refused-without-reason")
    page.fill("textarea[name=reason]", "金融办依《政银合作协议》开展信用评估，经审核准予共享")
    page.click("button[value=approved]")
    assert "approved" in page.inner_text("h1")
    v.shot("decision-approved")
    from exchange.ledger import Ledger

    entries = Ledger(demo.data / "exchange" / "ledger.jsonl").entries()
    decided = [
        e for e in entries if e["action"] == "request.decided" and e["detail"]["request_id"] == "operations-bank"
    ]
    assert decided[-1]["actor"] == "steward:demo-steward"
    assert decided[-1]["detail"]["reason"].startswith("金融办") and decided[-1]["detail"]["console_session_sha256"]


def test_a_consumer_sees_only_its_own_requests_and_shares(visit):
    v = visit("huangyan-mujun")
    page = v.page
    v.go("/requests")
    listed = page.inner_text("#requests")
    assert "mujun-jingxinju" in listed and "operations-bank" not in listed and "chain-directory" not in listed
    page.click("a:text-is('mujun-jingxinju')")
    page.click("a:has-text('预览')")
    # (a click starts a navigation: assertions that wait for the new page, not a count of the old one)
    expect(page.locator("table.data tbody tr").first).to_be_visible()
    v.shot("consumer-share")
    assert v.go("/requests/operations-bank").status == 404  # another consumer's: not even its existence
    assert v.go("/datasets/std/amr_registration").status == 403
    assert v.go("/quarantine").status == 403
    assert v.go("/mujun?q=塑业").status == 403
    # the catalogue shows it what may be shared, and no preview
    v.go("/catalogue")
    assert "raw/" not in page.inner_text(".results") and "std/" not in page.inner_text(".results")
    v.shot("consumer-catalogue")


def test_mujun_lookup_explains_band_rank_indicators_and_rule(visit, site):
    _, demo = site
    ev = pl.read_delta(str(demo.lake / "publish" / "topic_mujun_evaluation")).filter(pl.col("band").is_not_null())
    firm = ev.sort("uscc").row(0, named=True)
    v = visit("demo-steward")
    page = v.page
    v.go("/mujun")
    page.fill("input[name=q]", firm["name"])
    page.click("form.search button")
    page.click(f"a[href='/mujun/{firm['uscc']}/{firm['year']}']")
    facts = page.inner_text("dl.facts")
    assert firm["band_name_zh"] in facts and f"{firm['rank_in_group']} / {firm['group_size']}" in facts
    assert "名次百分位" in facts and "异议" in facts
    indicators = page.inner_text("#indicators")
    scores = pl.read_delta(str(demo.lake / "publish" / "topic_mujun_indicator_scores")).filter(
        (pl.col("uscc") == firm["uscc"]) & (pl.col("year") == firm["year"])
    )
    assert scores.height > 0 and all(n in indicators for n in scores["name_zh"])
    # which sources were complete, which months were missing (the demo's power file of 2023-07 was rejected)
    completeness = page.inner_text("#completeness")
    assert "纳税申报" in completeness and "用电计量" in completeness and "2023-07" in completeness
    # …and the 归集 status says why: the department never delivered a usable July file (not the firm's gap)
    power = page.locator("#completeness tbody tr", has_text="用电计量").inner_text().split("\t")
    assert power[3] == "2023-07" and power[4] == "2023-07", power
    v.shot("mujun-firm")
    # the enterprise's objection, recorded by the steward, then rejected with a reason
    page.select_option("#file-objection select[name=input]", "land_mu")
    page.fill("#file-objection input[name=value]", "12.5")
    page.fill("#file-objection input[name=statement]", "新厂房用地已办理不动产权证")
    page.click("#file-objection button[type=submit]")
    row = page.locator("#objections tbody tr").first
    assert "待处理" in row.inner_text() and "用地面积" in row.inner_text()
    row.locator("input[name=reason]").fill("权证登记日期晚于评价年度")
    row.locator("button[value=rejected]").click()
    assert "已驳回" in page.inner_text("#objections") and "权证登记日期晚于评价年度" in page.inner_text("#objections")
    v.shot("mujun-objection")


def test_the_steward_sees_how_identity_quarantined_records_were_matched(visit, site):
    _, demo = site
    matches = pl.read_delta(str(demo.lake / "ops" / "entity_matches"))
    v = visit("demo-steward")
    page = v.page
    v.go("/entities")
    assert "没有待处理的记录" in page.inner_text("#entities")  # the demo's matches are all unambiguous
    page.select_option("select[name=status]", "matched")
    page.click("form.search button")
    rows = page.locator("#entities tbody tr")
    expect(rows).to_have_count(min(matches.height, 200))
    assert "已匹配" in rows.first.inner_text()
    assert f"{matches.height} 条" in page.inner_text("main")
    v.shot("entities")


def test_column_lineage_traces_to_the_landing_header_with_privacy_transforms_marked(visit):
    v = visit("demo-modeler")
    page = v.page
    v.go("/lineage?dataset=std/amr_registration&column=legal_rep_id_no")
    steps = page.locator("#lineage li").all_inner_texts()
    assert "std/amr_registration.legal_rep_id_no" in steps[0]
    assert any("raw/amr_registration.legal_rep_id_no" in s and "🔒" in s for s in steps)
    assert "法定代表人证件号码" in steps[-1] and "source" in steps[-1]
    v.shot("lineage-pseudonymised")
    v.go("/lineage?dataset=publish/topic_mujun_evaluation&column=total_score")
    steps = page.locator("#lineage li").all_inner_texts()
    assert any("seeds/mujun_indicators.csv" in s for s in steps)  # parameters end at their seed file
    assert any("landing:" in s for s in steps)  # and the data at what departments delivered
    assert v.go("/lineage?dataset=publish/topic_mujun_evaluation&column=no_such_column").status == 404
