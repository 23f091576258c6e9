"""Data requests, grade rules, shares and the exchange ledger, on a small publish zone of known values."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from deltalake import DeltaTable
from exchange_support import decide, file, firms, published_lake, request, revoke, steward_key

from exchange import statistics
from exchange.ledger import CachedLedger, Ledger, LedgerBroken
from exchange.requests import Consumer, RequestError, parse
from exchange.server import app
from exchange.service import RULES
from exchange.shares import ShareRefused, share_table_name
from privacy.audit import AuditLog

CONSUMER = Consumer("dept-app", "区经信局测试应用", "区经信局", "department")


@pytest.fixture
def ex(tmp_path):
    return published_lake(tmp_path)


_file = file  # filed as the consumer the request names


# --- requests and the grade rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("purpose"), "'purpose' is required"),
        (lambda d: d.update(extra=1), "unknown field(s) ['extra']"),
        (lambda d: d["period"].update(end="2020-13-01"), "period.end: '2020-13-01' is not a date"),
        (lambda d: d["period"].update(end="2000-01-01"), "ends (2000-01-01) before it starts"),
        (lambda d: d["datasets"][0].update(columns=[]), "datasets[0].columns: a non-empty list"),
        (lambda d: d["datasets"][0].update(rows={"region_code": {"x": 1}}), "datasets[0].rows.region_code"),
        (lambda d: d.update(consumer="bank-app"), "filed by its own consumer (dept-app)"),
        (lambda d: d.update(purpose="x" * 501), "'purpose' is at most 500 printable characters"),
        (lambda d: d["datasets"][0].update(dataset="../x"), "datasets[0].dataset: a published dataset's name"),
        (lambda d: d["period"].update(end="2099-01-01"), "a share lasts at most 366 days"),
    ],
)
def test_a_malformed_request_says_what_and_where(change, message):
    doc = request("r1", ["uscc"])
    change(doc)
    with pytest.raises(RequestError) as err:
        parse(doc, "r1", CONSUMER, source="r1.yaml")
    assert message in str(err.value) and str(err.value).startswith("r1.yaml")


def test_request_ids_are_safe_names():
    with pytest.raises(RequestError, match="must be lower-case letters"):
        parse(request("x", ["uscc"]), "../../etc", CONSUMER)  # traversal attack


def test_inbox_files_good_requests_and_refuses_bad_ones_with_a_reason(ex):
    ex.inbox.mkdir(parents=True)
    (ex.inbox / "good.yaml").write_text(yaml.safe_dump(request("good", ["uscc", "name"]), allow_unicode=True))
    (ex.inbox / "broken.yaml").write_text("consumer: [unclosed\n")
    (ex.inbox / "huge.yaml").write_text("# " + "x" * 70_000)
    done = dict(ex.file_inbox("tester"))
    assert done["good.yaml"].status == "approved"
    assert "not readable YAML" in done["broken.yaml"] and "at most 65536" in done["huge.yaml"]
    assert (ex.folder / "filed" / "good.yaml").exists() and not list(ex.inbox.iterdir())
    reason = (ex.folder / "refused" / "broken.yaml.reason.txt").read_text()
    assert "broken.yaml" in reason and (ex.folder / "refused" / "broken.yaml").exists()


def test_l1_is_shared_on_request_l2_waits_for_a_steward(ex):
    l1 = _file(ex, request("l1", ["uscc", "name", "region_code"]))
    assert (l1.level, l1.status, l1.decided_by) == ("L1", "approved", RULES)
    assert l1.pins == {"firms": DeltaTable(ex.lake.uri("publish", "firms")).version()}
    l2 = _file(ex, request("l2", ["uscc", "revenue_yuan"]))
    assert (l2.level, l2.status) == ("L2", "pending") and "needs a steward's approval" in l2.reasons[-1]
    l3 = _file(ex, request("l3", ["uscc", "tax_arrears_yuan"]))
    assert (l3.level, l3.status) == ("L3", "pending")


def test_l4_and_never_shared_and_unknown_requests_are_rejected_with_the_reason(ex):
    l4 = _file(ex, request("l4", ["uscc", "legal_rep_ref"]))
    assert l4.status == "rejected" and "legal_rep_ref graded L4; L4 data is never shared" in l4.reasons[-1]
    secret = _file(ex, request("sec", ["uscc"], dataset="secrets"))
    assert secret.status == "rejected" and "不予共享" in secret.reasons[-1]
    raw = _file(ex, request("raw", ["uscc"], dataset="amr_registration"))
    assert raw.status == "rejected" and "not a published dataset" in raw.reasons[-1]
    col = _file(ex, request("col", ["uscc", "nope"]))
    assert col.status == "rejected" and "no column(s) ['nope']" in col.reasons[-1]
    with pytest.raises(RequestError, match="filed before"):
        _file(ex, request("l4", ["uscc"]))
    with pytest.raises(ValueError, match="rejected, not pending"):
        decide(ex, "l4", "approved", "try anyway")


# --- shares ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "level"),
    [
        ({"revenue_yuan": "13"}, "L2"),  # a filter on a hidden L2 figure grades the request L2
        ({"tax_arrears_yuan": ["3000.0"]}, "L3"),
        ({"region_code": "33100"}, "L1"),  # a filter on a column it may read changes nothing
    ],
)
def test_a_request_is_graded_by_every_column_it_reads_filters_included(ex, rows, level):
    state = _file(ex, request(f"filter-{level.lower()}", ["uscc", "name"], rows=rows))
    assert state.level == level
    assert state.status == ("approved" if level == "L1" else "pending")  # no L1 approval by rule for it


def test_a_filter_on_an_l4_column_is_refused_like_reading_it(ex):
    state = _file(ex, request("by-rep", ["uscc"], rows={"legal_rep_ref": "k1:0"}))
    assert state.status == "rejected" and "legal_rep_ref graded L4" in state.reasons[0]


def test_row_scope_filters_what_the_policy_releases_not_the_hidden_digits(ex):
    """An enterprise consumer sees revenue rounded to two significant digits; filtering on the exact value's
    digits must not pick out firms the rounding hides among others."""
    exact = firms(600).filter(pl.col("revenue_yuan").cast(pl.String).str.starts_with("1244"))
    assert 0 < exact.height < 600  # the exact digits single out a few firms
    _file(ex, request("dig", ["uscc", "revenue_yuan"], rows={"revenue_yuan": "1244"}, kind="enterprise"))
    decide(ex, "dig", "approved", "测试")
    ex.build("dig", "tester")
    assert _share(ex, "dig").height == 0  # no released (rounded) value starts with those digits
    _file(ex, request("round", ["uscc", "revenue_yuan"], rows={"revenue_yuan": "1200000"}, kind="enterprise"))
    decide(ex, "round", "approved", "测试")
    ex.build("round", "tester")
    got = _share(ex, "round")
    assert got.height > exact.height and set(got["revenue_yuan"]) == {1_200_000.0}


def test_a_request_using_yaml_aliases_is_refused_before_it_expands(ex):
    ex.inbox.mkdir(parents=True)
    bomb = ["a: &a [" + ",".join(["x"] * 10) + "]"]
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        bomb.append(f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [" + ",".join([f"*{prev}"] * 10) + "]")
    doc = yaml.safe_dump(request("laughs", ["uscc"]), allow_unicode=True) + "\n".join(bomb) + "\n"
    (ex.inbox / "laughs.yaml").write_text(doc, encoding="utf-8")
    [(name, outcome)] = ex.file_inbox("tester")
    assert name == "laughs.yaml" and "anchors and aliases are not accepted" in outcome
    assert not ex.ledger.path.exists() or ex.ledger.path.stat().st_size < 10_000


def test_an_id_with_a_trailing_newline_is_not_a_safe_name():
    for bad in ("ok\n", "ok\r", "ok/..", ""):
        with pytest.raises(RequestError, match="must be lower-case letters"):
            parse(request("x", ["uscc"]), bad, CONSUMER)


def test_no_ledger_entry_grows_beyond_its_cap(tmp_path):
    from privacy.audit import MAX_ENTRY_BYTES, EntryTooLarge

    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.record("share.denied", "tester", "r1", reason="x")
    with pytest.raises(EntryTooLarge):
        ledger.record("share.denied", "tester", "r1", reason="x" * MAX_ENTRY_BYTES)
    assert ledger.verify().ok and ledger.verify().entries == 1


def _share(ex, rid: str, dataset: str = "firms") -> pl.DataFrame:
    return pl.read_delta(ex.lake.uri("share", share_table_name(rid, dataset)))


def test_a_share_holds_exactly_the_granted_columns_and_rows_pinned_at_approval(ex):
    _file(ex, request("dept", ["uscc", "region_code", "revenue_yuan"], rows={"region_code": "33100"}))
    decide(ex, "dept", "approved", "依职责")
    # the publish zone moves on after the approval: the share still comes from the pinned version
    ex.lake.overwrite("publish", "firms", firms(600).with_columns(pl.col("revenue_yuan") * 2).to_arrow())
    manifest, profile = ex.build("dept", "tester")
    expected = (
        firms(600).filter(pl.col("region_code").str.starts_with("33100")).select("uscc", "region_code", "revenue_yuan")
    )
    got = _share(ex, "dept")
    assert got.columns == ["uscc", "region_code", "revenue_yuan"]
    assert got.sort("uscc").equals(expected.sort("uscc"))  # department policy keeps L2 values as they are
    table = manifest["tables"][0]
    assert table["source_version"] == 0 and table["rows"] == expected.height == 300
    assert table["source_rows"] == table["rows"] + table["rows_out_of_scope"]  # rows reconcile
    root = Path(ex.lake.uri("share", share_table_name("dept", "firms")))
    for f in table["files"]:
        assert hashlib.sha256((root / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    written = json.loads(Path(ex.lake.uri("share", "dept"), "manifest.json").read_text())
    assert written == json.loads(json.dumps(manifest))
    assert profile and json.loads(Path(profile).read_text())["bearerToken"]
    assert oct(Path(profile).stat().st_mode & 0o777) == "0o600"


def test_an_enterprise_consumer_gets_its_policy_applied(ex):
    _file(ex, request("bank", ["uscc", "revenue_yuan", "tax_arrears_yuan", "established_on"], kind="enterprise"))
    decide(ex, "bank", "approved", "企业授权")
    manifest, _ = ex.build("bank", "tester")
    got = _share(ex, "bank").sort("uscc")
    src = firms(600).sort("uscc")
    assert manifest["tables"][0]["transforms"] == {
        "revenue_yuan": "generalised",
        "tax_arrears_yuan": "suppressed",
        "established_on": "generalised",
    }
    # L2 sensitive → two significant digits; L3 → suppressed; L2 quasi date → its year
    assert got["revenue_yuan"][0] == 1_200_000.0 and got["revenue_yuan"][599] == 7_200_000.0  # 7,150,590.5
    assert got["tax_arrears_yuan"].null_count() == got.height
    assert got["established_on"].to_list() == [dt.date(d.year, 1, 1) for d in src["established_on"]]
    assert got["uscc"].equals(src["uscc"])


def test_a_k_anonymity_failure_refuses_the_share_and_writes_nothing(ex):
    # scale × establishment date is unique per firm for a department (which keeps L2 quasi-identifiers)
    _file(ex, request("kfail", ["scale_type", "established_on", "revenue_yuan"]))
    decide(ex, "kfail", "approved", "统计分析")
    with pytest.raises(ShareRefused, match="k_anonymity"):
        ex.build("kfail", "tester")
    assert ex.lake.table("share", share_table_name("kfail", "firms")) is None
    assert ex.state("kfail").manifest is None and not ex.state("kfail").tokens
    # generalised for an enterprise consumer (date → year), the classes are large enough
    _file(ex, request("kok", ["scale_type", "established_on", "revenue_yuan"], kind="enterprise"))
    decide(ex, "kok", "approved", "统计分析")
    assert ex.build("kok", "tester")[0]["tables"][0]["rows"] == 600


def test_a_share_rebuilt_from_its_pinned_versions_is_byte_identical(ex):
    _file(ex, request("again", ["uscc", "name", "revenue_yuan"], kind="enterprise"))
    decide(ex, "again", "approved", "依职责")
    first, profile = ex.build("again", "tester")
    ex.lake.overwrite("publish", "firms", firms(700).to_arrow())  # publish moves on
    second, no_new_profile = ex.build("again", "tester")
    a, b = first["tables"][0], second["tables"][0]
    assert b["share_version"] > a["share_version"]  # a new build (the old one vacuumed away)
    assert [f["sha256"] for f in a["files"]] == [f["sha256"] for f in b["files"]]
    assert a["content_sha256"] == b["content_sha256"] and profile and no_new_profile is None


def test_a_share_follows_new_publish_versions_within_its_scope_and_a_refused_refresh_changes_nothing(ex):
    _file(ex, request("live", ["uscc", "region_code", "revenue_yuan"], rows={"region_code": "33100"}))
    decide(ex, "live", "approved", "依职责")
    first, _ = ex.build("live", "tester")
    entries = len(ex.ledger.entries())
    assert ex.refresh("live", "automation") == (None, "share live is current (publish versions {'firms': 0})")
    assert len(ex.ledger.entries()) == entries  # a current share records nothing

    # a delivery flowed to publish: 700 firms now, revenue corrected
    ex.lake.overwrite("publish", "firms", firms(700).with_columns(pl.col("revenue_yuan") * 2).to_arrow())
    manifest, what = ex.refresh("live", "automation")
    assert "firms 0 → 1" in what and ex.state("live").pins == {"firms": 1}
    expected = (
        firms(700)
        .with_columns(pl.col("revenue_yuan") * 2)
        .filter(pl.col("region_code").str.starts_with("33100"))
        .select("uscc", "region_code", "revenue_yuan")
    )
    assert _share(ex, "live").sort("uscc").equals(expected.sort("uscc"))  # same scope, new data
    assert manifest["tables"][0]["source_version"] == 1 and manifest["tables"][0]["rows"] == expected.height
    actions = [e["action"] for e in ex.ledger.entries()[entries:]]
    assert actions == ["share.repinned", "share.built"]
    assert ex.state("live").manifest == json.loads(json.dumps(manifest))

    # the next version would single out firms (k-anonymity): refused, the share stays where it was
    _file(ex, request("kq", ["scale_type", "revenue_yuan"]))
    decide(ex, "kq", "approved", "统计分析")
    ex.build("kq", "tester")
    ex.lake.overwrite(
        "publish", "firms", firms(700).with_columns(pl.format("S{}", pl.col("uscc")).alias("scale_type")).to_arrow()
    )
    before = ex.state("kq")
    with pytest.raises(ShareRefused, match="k_anonymity"):
        ex.refresh("kq", "automation")
    after = ex.state("kq")
    assert after.pins == before.pins == {"firms": 1} and after.manifest == before.manifest

    revoke(ex, "live", "停止共享")
    assert ex.refresh("live", "automation") == (None, "request live is revoked: its share is not rebuilt")


def test_revocation_and_expiry_end_a_share(ex):
    _file(ex, request("rv", ["uscc"]))
    ex.build("rv", "tester")
    assert ex.state("rv").active()
    revoke(ex, "rv", "用途变更")
    s = ex.state("rv")
    assert s.status == "revoked" and not s.active() and "用途变更" in s.why_not()
    past = dt.date.today() - dt.timedelta(days=40)
    _file(ex, request("old", ["uscc"], start=past, days=10))
    ex.build("old", "tester")
    old = ex.state("old")
    assert not old.active() and "expired" in old.why_not()  # refused from the end of the period
    assert ex.expire() == ["old"] and ex.state("old").status == "expired"
    assert ex.expire() == []  # recorded once


# --- the ledger ---------------------------------------------------------------------------------------------------


def _busy_ledger(ex) -> Ledger:
    _file(ex, request("a", ["uscc", "revenue_yuan"]))
    decide(ex, "a", "approved", "依职责")
    ex.build("a", "tester")
    _file(ex, request("b", ["uscc", "legal_rep_ref"], kind="enterprise"))  # another consumer
    ex.ledger.record("share.read", "consumer of a", "a", dataset="firms", table_version=0, rows=600)
    assert ex.ledger.verify().ok
    return ex.ledger


def _rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_ledger_edit_is_detected(ex):
    ledger = _busy_ledger(ex)
    lines = ledger.path.read_text(encoding="utf-8").splitlines()
    entry = json.loads(lines[-1])
    entry["detail"]["rows"] = 6  # under-report a read
    _rewrite(ledger.path, [*lines[:-1], json.dumps(entry, ensure_ascii=False, sort_keys=True)])
    verdict = ledger.verify()
    assert not verdict.ok and f"line {len(lines)}: content does not match its keyed hash" in verdict.problem


def test_ledger_deletion_and_truncation_are_detected(ex):
    ledger = _busy_ledger(ex)
    lines = ledger.path.read_text(encoding="utf-8").splitlines()
    _rewrite(ledger.path, [lines[0], *lines[2:]])  # the decision on request a disappears
    assert "line 2" in ledger.verify().problem
    _rewrite(ledger.path, lines[:-1])  # the last read disappears
    assert "truncated" in ledger.verify().problem


def test_sharing_statistics_count_requests_decisions_and_reads(ex):
    _busy_ledger(ex)
    revoke(ex, "a", "到此为止")
    ex.ledger.record("share.denied", "consumer of a", "a", path="/x", reason="revoked")
    stats = statistics.statistics(ex.ledger.entries()).sort("consumer")
    a, b = stats.row(0, named=True), stats.row(1, named=True)
    assert (a["dataset"], a["requests"], a["approved"], a["revoked"], a["reads"], a["rows_read"], a["denied"]) == (
        "firms",
        1,
        1,
        1,
        1,
        600,
        1,
    )
    assert (b["requests"], b["approved"], b["rejected"], b["active_shares"]) == (1, 0, 1, 0)
    assert stats.columns == list(statistics.COLUMNS)


def test_the_services_ledger_cache_follows_appends_and_rewrites(ex):
    cached = CachedLedger(ex.ledger.path)
    assert cached.states() == {}
    _file(ex, request("a", ["uscc", "revenue_yuan"]))
    assert cached.states()["a"].status == "pending"
    decide(ex, "a", "approved", "依职责")
    ex.build("a", "tester")
    ex.ledger.record("share.read", "consumer of a", "a", dataset="firms", table_version=0, rows=600)
    follows = cached.states()["a"]
    full = Ledger(ex.ledger.path).states()["a"]
    assert (
        (follows.status, follows.reads, follows.rows_read, follows.tokens)
        == (
            full.status,
            full.reads,
            full.rows_read,
            full.tokens,
        )
        == ("approved", 1, 600, full.tokens)
    )
    token = next(iter(full.tokens))
    assert cached.holder(token).id == "a" and cached.holder("0" * 64) is None
    revoke(ex, "a", "撤销")
    assert cached.states()["a"].status == "revoked"  # takes effect on the next call
    assert cached.holder(token).status == "revoked"
    lines = ex.ledger.path.read_text(encoding="utf-8").splitlines()
    ex.ledger.path.write_text("\n".join(lines[:1]) + "\n", encoding="utf-8")  # rewritten shorter
    with pytest.raises(LedgerBroken, match="cut back"):  # the revocation cut off: nothing is served any more
        cached.states()


def test_the_cli_verifies_the_ledger(ex, monkeypatch, capsys):
    from orchestration.cli import main as cli

    _busy_ledger(ex)
    monkeypatch.setenv("LAKE_ROOT", ex.lake.root)
    monkeypatch.setenv("SHUCANG_EXCHANGE_DIR", str(ex.folder))
    monkeypatch.setenv("SHUCANG_AUDIT_LOG", str(ex.audit_log))
    assert cli.main(["exchange", "verify"]) == 0 and "verifies" in capsys.readouterr().out
    lines = ex.ledger.path.read_text(encoding="utf-8").splitlines()
    _rewrite(ex.ledger.path, [lines[0].replace("测试", "改过"), *lines[1:]])
    assert cli.main(["exchange", "verify"]) == 2 and "line 1" in capsys.readouterr().out
    key = ["--as", "steward-zhang", "--key-file", str(steward_key(ex))]
    assert cli.main(["exchange", "decide", "a", "approved", "--reason", "x", *key]) == 3  # broken ledger: refused


def test_ended_shares_are_purged_and_the_ledger_keeps_their_hashes(ex):
    _file(ex, request("live", ["uscc"]))
    ex.build("live", "tester")
    _file(ex, request("rv", ["uscc"]))
    manifest, profile = ex.build("rv", "tester")
    past = dt.date.today() - dt.timedelta(days=40)
    _file(ex, request("old", ["uscc"], start=past, days=10))
    ex.build("old", "tester")
    revoke(ex, "rv", "用途已结束")
    assert ex.purge("tester") == ["old", "rv"]
    assert ex.lake.table("share", share_table_name("rv", "firms")) is None and not Path(profile).exists()
    assert ex.lake.table("share", share_table_name("live", "firms")) is not None  # an active share stays
    assert ex.state("old").status == "expired" and ex.state("old").purged
    entry = next(e for e in ex.ledger.entries() if e["action"] == "share.purged" and e["detail"]["request_id"] == "rv")
    assert entry["detail"]["content_sha256"] == {"firms": manifest["tables"][0]["content_sha256"]}
    assert ex.purge("tester") == [] and ex.ledger.verify().ok


# --- identity: who files, who decides ---------------------------------------------------------------------------


def test_a_decision_counts_only_when_signed_by_a_registered_stewards_key(ex, tmp_path):
    from exchange.identity import IdentityError, Principals, sign

    _file(ex, request("l2", ["uscc", "revenue_yuan"]))
    # a key nobody registered, a name typed into the payload, a tampered or replayed decision: all refused
    stranger = Principals(tmp_path / "other.json")
    stranger.add_steward("mallory", "M", "外部", tmp_path / "mallory.key")
    forged = sign(tmp_path / "mallory.key", "steward-zhang", "decide", "l2", "我说了算", decision="approved")
    with pytest.raises(IdentityError, match="not steward:steward-zhang's"):
        ex.decide(forged)
    with pytest.raises(IdentityError, match="no steward 'mallory'"):
        ex.decide(sign(tmp_path / "mallory.key", "mallory", "decide", "l2", "x", decision="approved"))
    genuine = sign(steward_key(ex), "steward-zhang", "decide", "l2", "依职责", decision="rejected")
    prefix, payload, sig = genuine.split(".")
    flipped = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    flipped["decision"] = "approved"
    tampered = ".".join([prefix, base64.urlsafe_b64encode(json.dumps(flipped).encode()).decode().rstrip("="), sig])
    with pytest.raises(IdentityError, match="signature"):
        ex.decide(tampered)
    assert ex.state("l2").status == "pending"  # nothing of the above was recorded
    state = ex.decide(genuine)
    assert state.status == "rejected" and state.decided_by == "steward:steward-zhang"
    entry = next(e for e in ex.ledger.entries() if e["action"] == "request.decided")
    assert entry["detail"]["steward"] == {"id": "steward-zhang", "name": "张管理员", "department": "区大数据中心"}
    with pytest.raises(ValueError, match="not pending"):
        ex.decide(genuine)  # replayed


def test_a_signed_decision_expires_and_a_disabled_steward_decides_nothing(ex):
    from exchange.identity import IdentityError, sign

    _file(ex, request("l2", ["uscc", "revenue_yuan"]))
    signed = sign(steward_key(ex), "steward-zhang", "decide", "l2", "依职责", decision="approved")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
    with pytest.raises(IdentityError, match="outside its validity"):
        ex.principals.verify_signed(signed, now=later)
    ex.principals.set_active("steward-zhang", False)
    with pytest.raises(IdentityError, match="disabled"):
        ex.decide(signed)
    assert ex.state("l2").status == "pending"


def test_registry_holds_no_secret_and_is_owner_only(ex):
    text = ex.principals.path.read_text(encoding="utf-8")
    assert oct(ex.principals.path.stat().st_mode & 0o777) == "0o600"
    _, key = ex.principals.add_consumer("new-app", "新应用", "区经信局", "department")
    assert key.startswith("shc_") and key not in ex.principals.path.read_text(encoding="utf-8")
    assert ex.principals.by_key(key).id == "new-app" and ex.principals.by_key(key + "x") is None
    new = ex.principals.rotate_key("new-app")
    assert ex.principals.by_key(key) is None and ex.principals.by_key(new).id == "new-app"
    assert "PRIVATE" not in text and oct(steward_key(ex).stat().st_mode & 0o777) == "0o600"


def test_an_inbox_request_must_name_a_registered_consumer(ex):
    ex.inbox.mkdir(parents=True)
    doc = request("impostor", ["uscc"])
    doc["consumer"] = {"name": "黄岩区经信局亩均办", "department": "区经信局", "kind": "department"}
    (ex.inbox / "impostor.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    doc2 = {**request("ghost", ["uscc"]), "consumer": "no-such-app"}
    (ex.inbox / "ghost.yaml").write_text(yaml.safe_dump(doc2, allow_unicode=True), encoding="utf-8")
    outcomes = dict(ex.file_inbox("tester"))
    assert "names a registered consumer by its id" in outcomes["impostor.yaml"]
    assert "no consumer 'no-such-app'" in outcomes["ghost.yaml"]
    assert ex.ledger.states() == {}


# --- the service against a rewritten ledger, superseded builds, disabled consumers -------------------------------


def _client(ex):
    from starlette.testclient import TestClient

    return TestClient(app(ex), base_url="http://127.0.0.1:1")


def _profile_token(profile: str) -> dict:
    return {"Authorization": f"Bearer {json.loads(Path(profile).read_text())['bearerToken']}"}


QUERY = "/delta-sharing/shares/{}/schemas/shucang/tables/firms/query"


def test_a_forged_ledger_line_opens_nothing_and_stops_the_service_until_repaired(ex):
    _file(ex, request("real", ["uscc"]))
    _, profile = ex.build("real", "tester")
    client = _client(ex)
    assert client.post(QUERY.format("real"), headers=_profile_token(profile), json={}).status_code == 200
    # someone who can write the ledger but not read the chain key appends a token for a pending request
    _file(ex, request("wanted", ["uscc", "revenue_yuan"]))
    last = json.loads(ex.ledger.path.read_text(encoding="utf-8").splitlines()[-1])
    forged = {
        "seq": last["seq"] + 1,
        "at": last["at"],
        "actor": "steward-zhang",
        "action": "token.issued",
        "detail": {"request_id": "wanted", "token_sha256": hashlib.sha256(b"mine").hexdigest(), "expires_at": "x"},
        "prev": last["hash"],
    }
    forged["hash"] = hashlib.sha256(json.dumps(forged, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    with ex.ledger.path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(forged, ensure_ascii=False, sort_keys=True) + "\n")
    r = client.post(QUERY.format("wanted"), headers={"Authorization": "Bearer mine"}, json={})
    assert r.status_code == 503 and r.json()["errorCode"] == "SERVICE_UNAVAILABLE"
    r = client.post(QUERY.format("real"), headers=_profile_token(profile), json={})
    assert r.status_code == 503  # nothing is served from a ledger that does not verify
    assert "keyed hash" in ex.ledger.verify().problem


def test_a_ledger_cut_back_with_its_head_file_restored_is_caught_by_the_checkpoints(ex):
    _file(ex, request("rv", ["uscc"]))
    ex.build("rv", "tester")
    lines = ex.ledger.path.read_text(encoding="utf-8").splitlines()
    head, copy = ex.ledger.head.read_text(), ex.ledger.head_copy.read_text()
    revoke(ex, "rv", "撤销")
    assert ex.ledger.verify().ok
    _rewrite(ex.ledger.path, lines)  # the revocation deleted …
    ex.ledger.head.write_text(head)  # … and the head file put back as it was
    verdict = ex.ledger.verify()
    assert not verdict.ok and "older head restored" in verdict.problem  # the copy beside the chain key
    ex.ledger.head_copy.write_text(copy)  # even with that copy rolled back too …
    verdict = ex.ledger.verify()
    assert not verdict.ok and "checkpointed" in verdict.problem  # … the audit log's checkpoint says otherwise
    assert AuditLog(ex.audit_log).verify().ok  # the anchor itself is intact


def test_superseded_share_builds_are_unreadable(ex):
    _file(ex, request("bank", ["uscc", "revenue_yuan"], kind="enterprise"))
    decide(ex, "bank")
    first, profile = ex.build("bank", "tester")
    client = _client(ex)
    r = client.post(QUERY.format("bank"), headers=_profile_token(profile), json={})
    old_url = json.loads(r.text.splitlines()[2])["file"]["url"].replace("http://127.0.0.1:1", "")
    assert client.get(old_url).status_code == 200
    ex.build("bank", "tester")  # rebuilt (say, under a stricter policy)
    r = client.post(QUERY.format("bank"), headers=_profile_token(profile), json={"version": 0})
    assert r.status_code == 400 and "current build only" in r.json()["message"]
    assert client.get(old_url).status_code == 403  # a URL signed for the old build opens nothing
    root = Path(ex.lake.uri("share", share_table_name("bank", "firms")))
    assert {p.name for p in root.glob("*.parquet")} == {
        f["path"] for f in ex.state("bank").manifest["tables"][0]["files"]
    }


def test_a_disabled_consumer_loses_its_shares_and_refusals_do_not_flood_the_ledger(ex):
    _file(ex, request("mine", ["uscc"]))
    _, profile = ex.build("mine", "tester")
    client = _client(ex)
    r = client.post(QUERY.format("mine"), headers=_profile_token(profile), json={})
    signed = json.loads(r.text.splitlines()[2])["file"]["url"].replace("http://127.0.0.1:1", "")
    ex.principals.set_active("dept-app", False)
    assert client.get(signed).status_code == 403  # a URL signed before the consumer was disabled opens nothing
    before = len(ex.ledger.entries())
    for _ in range(50):
        r = client.post(QUERY.format("mine"), headers=_profile_token(profile), json={})
        assert r.status_code == 403 and "not an active registered consumer" in r.json()["message"]
    assert len(ex.ledger.entries()) == before + 1  # one denial on the ledger; every call in the access log
    assert len((ex.folder / "access.log").read_text().splitlines()) >= 50


# --- what a published dataset discloses ---------------------------------------------------------------------------


def test_identified_datasets_go_only_to_consumers_entitled_to_named_firms(ex):
    from exchange_support import catalogue_entry, write_catalogue

    ex.lake.overwrite("publish", "firm_counts", pl.DataFrame({"region_code": ["331003"], "firms": [120]}).to_arrow())
    counts = catalogue_entry(
        "firm_counts",
        ex.lake,
        columns={"region_code": ("L1", "none", "organisation.location"), "firms": ("L1", "none", "metadata")},
    )
    write_catalogue(ex.lake, [catalogue_entry("firms", ex.lake), {**counts, "disclosure": "deidentified"}])
    ex.principals.add_consumer("public-app", "公众查询应用", "外部", "enterprise")  # no entitlement to named firms
    doc = {**request("who-is-who", ["uscc", "name"]), "consumer": "public-app"}
    state = ex.file(parse(doc, doc["id"], ex.consumer("public-app")), actor="tester")
    assert state.status == "rejected" and "identifies firms by design" in state.reasons[-1]
    doc = {**request("how-many", ["region_code", "firms"], dataset="firm_counts"), "consumer": "public-app"}
    assert ex.file(parse(doc, doc["id"], ex.consumer("public-app")), actor="tester").status == "approved"


def test_a_published_model_must_say_what_it_discloses_and_small_cells_are_suppressed():
    from exchange.publication import Model, check_gates, suppress_small_cells

    frame = pl.DataFrame(
        {
            "industry_code": ["3525", "2929", "2927"],
            "period": ["2023-01"] * 3,
            "enterprises": [40, 3, None],
            "output": [1e6, 2e4, 5.0],
        }
    )
    grades = {c: {"level": "L1", "role": "none"} for c in frame.columns}
    base = dict(name="agg", key=["industry_code", "period"], columns=list(frame.columns), quasi=[])
    undeclared = check_gates(frame, Model(**base), grades, []).privacy
    assert any("declare meta disclosure" in p for p in undeclared)  # removing the declaration fails the gate
    bare = check_gates(frame, Model(**base, disclosure="deidentified"), grades, []).privacy
    assert any("declares no quasi-identifier and no small_cell_count" in p for p in bare)
    model = Model(**base, disclosure="deidentified", small_cell_count=["enterprises"])
    assert any("2 row(s) aggregate fewer than 5 firms" in p for p in check_gates(frame, model, grades, []).privacy)
    suppressed, n = suppress_small_cells(frame, model, 5)
    assert n == 2 and suppressed["output"].to_list() == [1e6, None, None]
    assert suppressed["industry_code"].to_list() == ["3525", "2929", "2927"]  # the cell stays, its values go
    assert check_gates(suppressed, model, grades, []).privacy == []
    assert check_gates(frame, Model(**base, disclosure="identified"), grades, []).privacy == []


def test_deidentified_counts_go_noised_to_consumers_not_entitled_to_named_firms_within_a_budget(ex):
    """An aggregate's firm counts are released exactly to an entitled consumer, and with Laplace noise
    (ε per build, from a per-consumer budget, reproducible per pin) to one that is not."""
    from exchange_support import catalogue_entry, write_catalogue

    from exchange.requests import policy

    # 60 cells: the chance that noise at scale 1 rounds to zero in every one of them is about 1e-25
    cells = pl.DataFrame({"region_code": [f"3310{i:02d}" for i in range(60)], "firms": [20 + 7 * i for i in range(60)]})
    ex.lake.overwrite("publish", "firm_counts", cells.to_arrow())
    entry = catalogue_entry(
        "firm_counts",
        ex.lake,
        columns={"region_code": ("L1", "none", "organisation.location"), "firms": ("L1", "none", "metadata")},
    )
    write_catalogue(ex.lake, [{**entry, "disclosure": "deidentified", "small_cell_count": "firms"}])
    ex.principals.add_consumer("public-app", "公众查询应用", "外部", "enterprise")

    def share(rid, consumer):
        doc = {**request(rid, ["region_code", "firms"], dataset="firm_counts", kind="enterprise"), "consumer": consumer}
        assert ex.file(parse(doc, rid, ex.consumer(consumer)), actor="tester").status == "approved"
        manifest, _ = ex.build(rid, "tester")
        return manifest["tables"][0], _share(ex, rid, "firm_counts").sort("region_code")

    exact, got = share("entitled", "bank-app")
    assert "dp" not in exact and got["firms"].to_list() == cells.sort("region_code")["firms"].to_list()
    table, noisy = share("public", "public-app")
    assert table["dp"] == {"mechanism": "laplace", "sensitivity": 1, "epsilon": 1.0, "columns": ["firms"]}
    assert noisy["firms"].to_list() != cells.sort("region_code")["firms"].to_list()  # noised …
    assert (noisy["firms"] - cells.sort("region_code")["firms"]).abs().max() < 30  # … at ε = 1 (scale 1)
    rebuilt = ex.build("public", "tester")[0]["tables"][0]
    assert _share(ex, "public", "firm_counts").sort("region_code").equals(noisy)  # the same release again
    assert rebuilt["content_sha256"] == table["content_sha256"]
    budget = ex.dp_budget
    assert budget.spent("public-app/firm_counts") == 2.0
    spends = [e for e in AuditLog(ex.audit_log).entries() if e["action"] == "dp.spend"]
    assert len(spends) == 2
    total = float(policy()["dp"]["budget_per_dataset"])
    for i in range(int(total - 2)):
        share(f"again-{i}", "public-app")
    doc = {
        **request("one-too-many", ["region_code", "firms"], dataset="firm_counts", kind="enterprise"),
        "consumer": "public-app",
    }
    ex.file(parse(doc, "one-too-many", ex.consumer("public-app")), actor="tester")
    with pytest.raises(ShareRefused, match="privacy budget of public-app"):
        ex.build("one-too-many", "tester")
    assert ex.lake.table("share", share_table_name("one-too-many", "firm_counts")) is None
