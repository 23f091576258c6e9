"""The steward console's rules without a browser: who may see and do what, sessions, sign-in, CSRF, escaping —
on a small lake of known values (the browser tests in test_console_browser.py run the same tasks on the demo)."""

from __future__ import annotations

import datetime as dt
import re

import polars as pl
import pyarrow as pa
import pytest
from exchange_support import CONSUMERS, STEWARD, catalogue_entry, file, published_lake, request, write_catalogue
from starlette.testclient import TestClient

from console.app import app
from console.data import Console, Denied, NotFound, Viewer
from console.sessions import FAILURES_ALLOWED, Sessions
from exchange.identity import IdentityError
from lakehouse.registry import registry
from privacy.audit import AuditLog
from quality import resolution

RAW_ID = "330103199001011234"
PASSWORD = "a-long-console-password"


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def console(tmp_path) -> Console:
    ex = published_lake(tmp_path)
    lake = ex.lake
    raw = pl.DataFrame(
        {"uscc": ["91331003MA0000001X"], "legal_rep_id_no": [RAW_ID], "name": ["台州市测试模具有限公司"]}
    )
    lake.overwrite("raw", "amr_registration", raw.to_arrow())
    std = raw.with_columns(pl.lit("k1:" + "0" * 32).alias("legal_rep_id_no"))
    lake.overwrite("std", "amr_registration", std.to_arrow())
    lake.overwrite(
        "quarantine",
        "findings",
        pl.DataFrame(
            {
                "dataset": ["amr_registration"],
                "department": ["amr"],
                "source_file": ["amr/registration/x.csv"],
                "row_number": [7],
                "rule_id": ["ric_valid"],
                "action": ["quarantined"],
                "column": ["legal_rep_id_no"],
                "value": [RAW_ID],
                "reason_zh": ["证件号码校验位错误"],
                "reason_en": ["check digit wrong"],
            }
        ).to_arrow(),
    )
    evaluation = {
        "uscc": ["91331003MA0000001X"],
        "year": [2023],
        "name": ["台州市测试模具有限公司"],
        "county_code": ["331003"],
        "parameter_county": ["331003"],
        "scale_group": ["规上"],
        "total_score": [88.0],
        "rank_in_group": [3],
        "group_size": [10],
        "rank_pct": [30.0],
        "band": ["B"],
        "band_name_zh": ["B类（鼓励提升类）"],
        "explanation": ["亩均税收 …"],
        "exempt_reason": [None],
    }
    lake.overwrite("publish", "topic_mujun_evaluation", pl.DataFrame(evaluation).to_arrow())
    entries = [catalogue_entry("firms", lake), catalogue_entry("secrets", lake, "不予共享")]
    for zone in ("raw", "std"):
        entries.append(
            {
                "dataset_id": "amr_registration",
                "zone": zone,
                "name_zh": "企业登记信息",
                "name_en": "Enterprise registration",
                "description": "<script>alert(1)</script>市场主体登记",
                "source_department_zh": "台州市黄岩区市场监督管理局",
                "update_cycle": "每日",
                "share_type": "有条件共享",
                "grade": "L4" if zone == "raw" else "L2",
                "columns": [
                    {"column": "legal_rep_id_no", "grade": "L4", "effective_grade": "L4" if zone == "raw" else "L2"},
                    {"column": "uscc", "grade": "L1", "effective_grade": "L1"},
                ],
            }
        )
    write_catalogue(lake, entries)
    ex.principals.add_modeler("modeler-li", "李建模", "区大数据中心")
    for who in (STEWARD, "modeler-li", *CONSUMERS.values()):
        ex.principals.set_password(who, PASSWORD)
    reported = []
    console = Console(
        lake,
        ex,
        AuditLog(tmp_path / "audit.jsonl"),
        registry(),
        report=lambda t, v, **m: reported.append((t.label, v, m)),
    )
    console.reported = reported  # what the console told Dagster (its writes of own tables)
    return console


STEWARD_V = Viewer(STEWARD, "steward", "张管理员", "区大数据中心")
MODELER_V = Viewer("modeler-li", "modeler", "李建模", "区大数据中心")
CONSUMER_V = Viewer(CONSUMERS["department"], "consumer", "区经信局测试应用", "区经信局")


# --- what each role sees ----------------------------------------------------------------------------------------


def test_each_role_looks_up_only_what_it_may(console):
    def seen(v):
        return {(e["zone"], e["dataset_id"]) for e in console.visible(v)}

    assert ("raw", "amr_registration") in seen(STEWARD_V)
    assert ("raw", "amr_registration") not in seen(MODELER_V) and ("std", "amr_registration") in seen(MODELER_V)
    assert seen(CONSUMER_V) == {("publish", "firms")}  # what may be shared; not 不予共享, not std
    with pytest.raises(Denied, match="无权查看 raw/amr_registration"):
        console.entry(MODELER_V, "raw", "amr_registration")
    with pytest.raises(NotFound):
        console.entry(STEWARD_V, "raw", "no_such")


def test_search_matches_chinese_english_and_columns_and_counts_facets(console):
    hits, counts = console.search(STEWARD_V, "登记")
    assert {(e["zone"], e["dataset_id"]) for e in hits} == {("raw", "amr_registration"), ("std", "amr_registration")}
    assert counts["zone"] == {"raw": 1, "std": 1} and counts["grade"] == {"L2": 1, "L4": 1}
    hits, counts = console.search(STEWARD_V, "registration", {"grade": "L4"})
    assert [e["zone"] for e in hits] == ["raw"] and counts["zone"] == {"raw": 1}  # other facets narrow counts
    assert [e["zone"] for e in console.search(STEWARD_V, "legal_rep_id_no", {"zone": "std"})[0]] == ["std"]
    assert console.search(STEWARD_V, "市场监督管理局 registration")[0]  # every term, in any field


def test_raw_is_read_by_stewards_with_a_reason_audited_and_never_by_modelers(console):
    with pytest.raises(ValueError, match="需填写事由"):
        console.preview(STEWARD_V, "raw", "amr_registration", reason="  ")
    rows = console.preview(STEWARD_V, "raw", "amr_registration", reason="核对整改")
    assert rows["legal_rep_id_no"].to_list() == [RAW_ID]
    with pytest.raises(Denied):
        console.preview(MODELER_V, "raw", "amr_registration")
    std = console.preview(MODELER_V, "std", "amr_registration")
    assert RAW_ID not in str(std.to_dicts())  # what std hides, a modeler never sees
    with pytest.raises(Denied, match="消费方"):
        console.preview(CONSUMER_V, "publish", "firms")
    actions = [(e["action"], e["actor"], e["detail"].get("reason")) for e in console.audit.entries()]
    assert ("console.preview", "steward:steward-zhang", "核对整改") in actions


def test_the_quarantine_is_for_stewards_and_masks_delivered_identifiers(console):
    found = console.quarantine(STEWARD_V, dataset="amr_registration")
    assert found["total"] == 1 and found["rows"][0]["rule_id"] == "ric_valid"
    assert found["rows"][0]["value"] != RAW_ID and found["rows"][0]["value"].startswith(RAW_ID[:3])
    for v in (MODELER_V, CONSUMER_V):
        with pytest.raises(Denied):
            console.quarantine(v)
        with pytest.raises(Denied):
            console.problem_lists(v)


def test_a_consumer_sees_its_own_requests_only(console):
    file(console.exchange, request("mine", ["uscc", "revenue_yuan"]))
    file(console.exchange, request("theirs", ["uscc", "revenue_yuan"], kind="enterprise"))
    assert [s.id for s in console.requests(CONSUMER_V)] == ["mine"]
    assert {s.id for s in console.requests(STEWARD_V)} == {"mine", "theirs"}
    with pytest.raises(NotFound):
        console.request(CONSUMER_V, "theirs")
    with pytest.raises(Denied):
        console.requests(MODELER_V)


# --- identities, sessions ----------------------------------------------------------------------------------------


def test_console_passwords_are_kept_as_scrypt_hashes_and_checked(console):
    reg = console.exchange.principals
    stored = reg.get(STEWARD).password_scrypt
    assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in reg.path.read_text(encoding="utf-8")
    assert reg.sign_in(STEWARD, PASSWORD).role == "steward"
    for who, password in ((STEWARD, PASSWORD + "x"), ("nobody", PASSWORD), (STEWARD, "")):
        with pytest.raises(IdentityError, match="^unknown id or wrong password$"):  # the same answer for each
            reg.sign_in(who, password)
    with pytest.raises(IdentityError, match="at least 12"):
        reg.set_password(STEWARD, "short")
    reg.set_active(STEWARD, False)
    with pytest.raises(IdentityError):
        reg.sign_in(STEWARD, PASSWORD)


def test_sessions_end_when_idle_or_too_old_and_sign_in_is_throttled():
    clock = Clock()
    sessions = Sessions(idle=60, absolute=300, clock=clock)
    token = sessions.open(STEWARD_V)
    clock.now += 59
    assert sessions.get(token) is not None  # used: its idle time starts again
    clock.now += 59
    assert sessions.get(token) is not None
    clock.now += 61
    assert sessions.get(token) is None  # idle too long
    token = sessions.open(STEWARD_V)
    for _ in range(7):
        clock.now += 50
        alive = sessions.get(token)
    assert alive is None  # 300 s after sign-in, however busy
    for _ in range(FAILURES_ALLOWED):
        sessions.failed("id:x")
    assert sessions.throttled("id:x") > 0 and sessions.throttled("id:y") == 0
    clock.now += 301
    assert sessions.throttled("id:x") == 0


# --- the web application ----------------------------------------------------------------------------------------


def _client(console, sessions=None) -> TestClient:
    return TestClient(app(console, "http://dagster.test", sessions), follow_redirects=False)


def _sign_in(client: TestClient, who: str, password: str = PASSWORD):
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"id": who, "password": password, "csrf": token, "next": "/catalogue"})


def _csrf(client: TestClient, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def test_every_page_needs_a_session_and_sends_security_headers(console):
    client = _client(console)
    for path in ("/catalogue", "/datasets/std/amr_registration", "/quarantine", "/requests", "/mujun", "/lineage"):
        r = client.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    r = client.get("/login")
    assert "default-src 'none'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"
    assert _sign_in(client, STEWARD, "wrong-password-123").status_code == 401
    r = _sign_in(client, STEWARD)
    assert r.status_code == 303 and r.headers["location"] == "/catalogue"
    cookie = r.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()


def test_sign_in_without_its_form_token_and_after_repeated_failures_is_refused(console):
    client = _client(console)
    client.get("/login")
    r = client.post("/login", data={"id": STEWARD, "password": PASSWORD, "csrf": "forged"})
    assert r.status_code == 403
    for _ in range(FAILURES_ALLOWED):
        _sign_in(client, STEWARD, "wrong-password-123")
    r = _sign_in(client, STEWARD)  # the right password, too late
    assert r.status_code == 429 and "too many failed sign-ins" in r.text


def test_decisions_need_the_csrf_token_a_steward_and_a_reason_and_record_the_steward(console):
    file(console.exchange, request("ask", ["uscc", "revenue_yuan"]))
    assert console.exchange.state("ask").status == "pending"
    client = _client(console)
    _sign_in(client, STEWARD)
    r = client.post("/requests/ask/decide", data={"decision": "approved", "reason": "依职责"})
    assert r.status_code == 403 and console.exchange.state("ask").status == "pending"
    token = _csrf(client, "/requests/ask")
    r = client.post("/requests/ask/decide", data={"decision": "approved", "reason": " ", "csrf": token})
    assert r.status_code == 400 and "须填写理由" in r.text and console.exchange.state("ask").status == "pending"
    r = client.post(
        "/requests/ask/decide",
        data={"decision": "approved", "reason": "依职责"},
        headers={"origin": "http://evil.test"},
    )
    assert r.status_code == 403
    r = client.post("/requests/ask/decide", data={"decision": "approved", "reason": "依职责", "csrf": token})
    assert r.status_code == 303
    state = console.exchange.state("ask")
    assert state.status == "approved" and state.decided_by == f"steward:{STEWARD}"
    # a consumer cannot decide, not even its own request
    file(console.exchange, request("ask2", ["uscc", "revenue_yuan"]))
    consumer = _client(console)
    _sign_in(consumer, CONSUMERS["department"])
    token = _csrf(consumer, "/requests/ask2")
    r = consumer.post("/requests/ask2/decide", data={"decision": "approved", "reason": "自己批", "csrf": token})
    assert r.status_code == 403 and console.exchange.state("ask2").status == "pending"


def test_an_expired_session_is_asked_to_sign_in_again(console):
    clock = Clock()
    client = _client(console, Sessions(idle=60, clock=clock))
    _sign_in(client, "modeler-li")
    assert client.get("/datasets/std/amr_registration").status_code == 200
    clock.now += 61
    r = client.get("/datasets/std/amr_registration")
    assert r.status_code == 303 and "/login" in r.headers["location"]


def test_catalogue_text_is_escaped_and_errors_are_pages_not_tracebacks(console):
    client = _client(console)
    _sign_in(client, "modeler-li")
    page = client.get("/datasets/std/amr_registration")
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    assert 'href="http://dagster.test/assets/std/amr_registration"' in page.text
    r = client.get("/datasets/raw/amr_registration")
    assert r.status_code == 403 and "Traceback" not in r.text
    assert client.get("/mujun/x/not-a-year").status_code == 404
    assert client.get("/no/such/page").status_code == 404


def test_a_steward_revokes_a_share_with_a_reason_and_the_consumer_loses_it(console):
    file(console.exchange, request("shared", ["uscc", "revenue_yuan"]))
    steward = _client(console)
    _sign_in(steward, STEWARD)
    token = _csrf(steward, "/requests/shared")
    steward.post("/requests/shared/decide", data={"decision": "approved", "reason": "依职责", "csrf": token})
    r = steward.post("/requests/shared/revoke", data={"reason": "", "csrf": token})
    assert r.status_code == 400 and "撤销须填写理由" in r.text and console.exchange.state("shared").status == "approved"
    r = steward.post("/requests/shared/revoke", data={"reason": "用途已结束", "csrf": token})
    assert r.status_code == 303
    state = console.exchange.state("shared")
    assert state.status == "revoked" and state.reasons[-1] == "用途已结束"
    revoked = [e for e in console.exchange.ledger.entries() if e["action"] == "share.revoked"][-1]
    assert revoked["actor"] == f"steward:{STEWARD}" and revoked["detail"]["console_session_sha256"]
    consumer = _client(console)
    _sign_in(consumer, CONSUMERS["department"])
    page = consumer.get("/requests/shared")
    assert "revoked" in page.text and "/shares/" not in page.text  # nothing left to preview


def test_a_steward_records_and_decides_an_objection_and_dagster_is_told(console):
    firm = "/mujun/91331003MA0000001X/2023"
    modeler = _client(console)
    _sign_in(modeler, "modeler-li")
    token = _csrf(modeler, firm)
    r = modeler.post(
        f"{firm}/objections", data={"input": "land_mu", "value": "3", "statement": "已办证", "csrf": token}
    )
    assert r.status_code == 403  # a modeler reads objections, never records them
    steward = _client(console)
    _sign_in(steward, STEWARD)
    token = _csrf(steward, firm)
    r = steward.post(
        f"{firm}/objections", data={"input": "land_mu", "value": "三亩", "statement": "已办证", "csrf": token}
    )
    assert r.status_code == 400 and "不是数字" in r.text
    r = steward.post(
        f"{firm}/objections",
        data={"input": "land_mu", "value": "3.5", "statement": "新厂房已办证", "evidence": "不动产权证", "csrf": token},
    )
    assert r.status_code == 303
    (filed,) = console.objections(STEWARD_V, "91331003MA0000001X", 2023)
    assert filed.status == "filed" and filed.filed_by == f"steward:{STEWARD}"
    r = steward.post(f"{firm}/objections/{filed.id}", data={"decision": "accepted", "reason": "", "csrf": token})
    assert r.status_code == 400 and "处理理由不能为空" in r.text
    r = steward.post(f"{firm}/objections/{filed.id}", data={"decision": "accepted", "reason": "经核实", "csrf": token})
    assert r.status_code == 303
    page = modeler.get(firm)
    assert filed.id in page.text and "已采纳" in page.text and "经核实" in page.text
    assert [(label, m["event"]) for label, _, m in console.reported] == [
        ("ops/mujun_objections", "filed"),
        ("ops/mujun_objections", "accepted"),
    ]


def test_a_steward_confirms_an_ambiguous_entity_match_and_dagster_is_told(console):
    record = {
        "dataset": "tax_monthly",
        "source_file": "tax/monthly/税务_月度申报_2023-03.csv",
        "row_number": 12,
        "failed_rules": "uscc_required",
        "delivered_code": None,
        "record_name": "台州市测试模具有限公司",
        "record_address": None,
        "method": "name",
        "uscc": "91331003MA00000012",
        "name": "台州市测试模具有限公司",
        "confidence": 0.97,
        "candidates": "91331003MA00000012 台州市测试模具有限公司 (name 0.97)；91331003MA00000025 <b>同名</b> (name 0.97)",
        "status": "review",
        "resolved": False,
        "note": "2 个候选企业，需人工确认",
        "resolved_at": dt.datetime(2024, 4, 1, tzinfo=dt.UTC),
    }
    console.lake.replace_where(
        "ops", "entity_matches", pa.Table.from_pylist([record], resolution.MATCH_SCHEMA), "dataset", "tax_monthly"
    )
    modeler = _client(console)
    _sign_in(modeler, "modeler-li")
    assert modeler.get("/entities").status_code == 403
    steward = _client(console)
    _sign_in(steward, STEWARD)
    page = steward.get("/entities")
    assert page.status_code == 200 and "2 个候选企业" in page.text and "91331003MA00000025" in page.text
    assert "<b>同名</b>" not in page.text and "&lt;b&gt;同名&lt;/b&gt;" in page.text  # escaped
    form = {"dataset": "tax_monthly", "source_file": record["source_file"], "row_number": "12", "reason": "税务核实"}
    r = steward.post("/entities/decide", data={**form, "decision": "confirmed", "uscc": "91331003MA00000012"})
    assert r.status_code == 403  # no CSRF token
    token = _csrf(steward, "/entities")
    bad = {**form, "decision": "confirmed", "other": "91331003MA00000013", "csrf": token}
    r = steward.post("/entities/decide", data=bad)
    assert r.status_code == 400 and "GB 32100" in r.text
    r = steward.post("/entities/decide", data={**form, "decision": "confirmed", "reason": " ", "csrf": token})
    assert r.status_code == 400 and "reason" in r.text
    ok = {**form, "decision": "confirmed", "uscc": "91331003MA00000012", "csrf": token}
    assert steward.post("/entities/decide", data=ok).status_code == 303
    (decided,) = resolution.decisions(console.lake).iter_rows(named=True)
    assert decided["uscc"] == "91331003MA00000012" and decided["actor"] == f"steward:{STEWARD}"
    assert decided["reason"] == "税务核实"
    assert [e["action"] for e in console.audit.entries()][-1] == "entity.confirmed"
    assert [(label, m["decision"]) for label, _, m in console.reported] == [("ops/entity_match_decisions", "confirmed")]


def test_the_steward_sees_the_chain_firms_whose_industry_the_master_does_not_know(console):
    edge = {
        "supplier_uscc": "91331003MA00000012",
        "supplier_name": "台州市测试模具有限公司",
        "supplier_industry": "3525",
        "buyer_uscc": "91331003MA00000025",
        "buyer_name": "台州市未登记塑料有限公司",
        "buyer_industry": None,
        "orders": 3,
        "amount_yuan": 120000.0,
    }
    known = {**edge, "buyer_uscc": "91331003MA00000038", "buyer_name": "甲", "buyer_industry": "2929"}
    console.lake.overwrite(
        "publish",
        "topic_chain_edges",
        pl.DataFrame([edge, known], schema_overrides={"buyer_industry": pl.String}).to_arrow(),
    )
    steward = _client(console)
    _sign_in(steward, STEWARD)
    page = steward.get("/entities")
    assert page.status_code == 200 and "1 / 2" in page.text
    listed = page.text.split('id="chain-unknown"')[1]
    assert "91331003MA00000025" in listed and "台州市未登记塑料有限公司" in listed and "需方 buyer" in listed
    assert "91331003MA00000038" not in listed and "91331003MA00000012" not in listed
