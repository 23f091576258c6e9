"""The stage engines without Dagster: std build, problem lists, publication, model grades, the lake door.

Each is plain code the assets call; here they run on small data in a temporary lake, composed as the
assets compose them.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import polars as pl
import pytest
from deltalake.exceptions import DeltaError

from assets.ingest.collector import Collector
from exchange.publication import Model, changes, check_gates, content_hash, publish
from lakehouse.lake import Lake
from lakehouse.registry import registry
from lakehouse.tables import CHANGES, DUPLICATES, FINDINGS, PROBLEMS, SCORES, STD_PARTITIONS
from privacy.model_grades import UNKNOWN, ModelGrades
from quality import problem_lists, reconcile
from quality.rulebook import rules_for
from quality.standardise import standardise

AT = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
SMALL = ("amr_registration", "tax_monthly")  # tax references registration


@pytest.fixture(scope="module")
def small_lake(generated, tmp_path_factory):
    """Two datasets collected and standardised by the engines alone, as the assets would."""
    work = tmp_path_factory.mktemp("engines")
    shutil.copytree(generated / "landing", work / "landing")
    lake, reg = Lake(str(work / "lake")), registry()
    outcomes = {}
    for name in SMALL:
        ds = reg.dataset(name)
        Collector(ds, lake, work / "landing", work / "rejected", "b1").run()
        outcomes[name] = standardise(lake, ds, rules_for(name), at=AT)
    return lake, outcomes


def test_the_std_engine_writes_std_quarantine_and_scores_and_says_which_versions(small_lake):
    lake, outcomes = small_lake
    for name, out in outcomes.items():
        r = out.result
        assert not out.withheld and out.version == lake.table("std", name).version()
        assert (
            r.rows_in
            == lake.row_count("raw", name)
            == r.rows_out + r.quarantined + r.exact_duplicates + r.key_duplicates
        )
        assert lake.row_count("std", name) == r.rows_out
        findings = lake.read(*FINDINGS.path).filter(pl.col("dataset") == name)
        assert findings.height == r.findings.height and r.quarantined > 0
        assert lake.read(*DUPLICATES.path).filter(pl.col("dataset") == name).height == r.duplicates.height
        assert set(out.side_versions) == {FINDINGS.label, DUPLICATES.label, STD_PARTITIONS.label, SCORES.label}
        assert set(out.scores) and all(0 <= v <= 100 for v in out.scores.values())
    scores = lake.read(*SCORES.path)
    assert sorted(scores["subject"].to_list()) == sorted(SMALL)  # one history row per build


def test_a_std_build_that_breaks_a_batch_rule_writes_nothing(small_lake, tmp_path):
    """Write-audit-publish: a raw table where most rows lack the key fails the share rule; std, findings
    and scores stay as they were."""
    lake = Lake(str(tmp_path / "lake"))
    ds = registry().dataset("amr_registration")
    raw = small_lake[0].read("raw", ds.id).with_columns(pl.lit(None, pl.String).alias("uscc"))
    lake.append("raw", ds.id, raw.to_arrow())
    out = standardise(lake, ds, rules_for(ds.id), at=AT)
    assert out.withheld and "quarantine_share" in out.reasons()
    assert lake.table("std", ds.id) is None and lake.table(*FINDINGS.path) is None
    assert lake.table(*SCORES.path) is None


class _Crash(BaseException):
    """A process dying at a chosen point (not an error any code path handles)."""


def _conserved(lake: Lake, name: str, raw_rows: int) -> bool:
    quarantined = lake.read(*FINDINGS.path).filter((pl.col("dataset") == name) & (pl.col("action") == "quarantined"))
    rows = quarantined.select("source_file", "row_number").unique().height
    merged = lake.read(*DUPLICATES.path).filter(pl.col("dataset") == name).height
    return raw_rows == lake.row_count("std", name) + rows + merged


@pytest.mark.parametrize("crash_at", ["stream", "findings", "duplicates", "scores", "cleanup"])
def test_a_std_build_killed_between_its_writes_is_completed_or_discarded_by_build_id(
    small_lake, tmp_path, monkeypatch, crash_at
):
    """std and quarantine are one fact: a crash after the std commit (before or between the quarantine and
    score writes, or before the staging is removed) is completed from the staging by the next build; a
    crash before the std commit leaves std and quarantine as they were and its staging is discarded."""
    import quality.standardise as std_engine

    lake = Lake(str(tmp_path / "lake"))
    ds, rules = registry().dataset("amr_registration"), rules_for("amr_registration")
    raw = small_lake[0].read("raw", ds.id)
    lake.append("raw", ds.id, raw.to_arrow())
    first = standardise(lake, ds, rules, at=AT)
    # a later delivery: ten rows without a name (quarantined) and five repeated rows (merged)
    late = pl.concat([raw.head(10).with_columns(pl.lit(None, pl.String).alias("name")), raw.slice(20, 5)]).with_columns(
        pl.lit("登记_补充.csv").alias("_source_file"), pl.lit("b2").alias("_batch_id")
    )
    lake.append("raw", ds.id, late.to_arrow())

    ops = []
    real_write, real_delete, real_stage = Lake._write, Lake.delete, std_engine._stage

    def write(self, zone, name, *a, **k):
        ops.append(f"{zone}/{name}")
        if ops[-1] == {"findings": FINDINGS, "duplicates": DUPLICATES, "scores": SCORES}.get(crash_at, CHANGES).label:
            raise _Crash
        return real_write(self, zone, name, *a, **k)

    def delete(self, zone, name):
        if crash_at == "cleanup" and zone == "ops":
            raise _Crash
        return real_delete(self, zone, name)

    def stage(lake_, ds_, build, label, frame):
        real_stage(lake_, ds_, build, label, frame)
        if crash_at == "stream" and label == DUPLICATES.label:
            raise _Crash  # staged, then the process dies before the std commit completes

    monkeypatch.setattr(Lake, "_write", write)
    monkeypatch.setattr(Lake, "delete", delete)
    monkeypatch.setattr(std_engine, "_stage", stage)
    # the Delta writer reports a fault in the stream it pulls as its own error
    with pytest.raises(DeltaError if crash_at == "stream" else _Crash):
        standardise(lake, ds, rules, at=AT + dt.timedelta(days=1))
    monkeypatch.undo()

    pending = std_engine.pending_builds(lake, ds)
    assert len(pending) == 1  # the staging names the build it belongs to
    std_build = lake.commits("std", ds.id, 1)[0].get("build_id")
    completed = std_engine.complete_pending(lake, ds)
    assert std_engine.pending_builds(lake, ds) == []
    if crash_at == "stream":  # std never committed: nothing to complete, the first build still stands
        assert completed == {} and lake.table("std", ds.id).version() == first.version
        assert pending[0] != std_build
    else:
        assert list(completed) == pending == [std_build]
        assert lake.row_count("std", ds.id) == first.result.rows_out + 5 - 5  # the repeats merged away
    # every raw row the standing std was built from is in std, quarantined or merged: none unaccounted for
    assert _conserved(lake, ds.id, raw.height + (0 if crash_at == "stream" else late.height))
    assert std_engine.complete_pending(lake, ds) == {}  # nothing left; a second pass changes nothing
    scores = lake.read(*SCORES.path).filter(pl.col("subject") == ds.id)
    assert scores.height == (1 if crash_at == "stream" else 2)  # one history row per committed build


def test_problem_lists_export_per_department_and_keep_a_ledger(small_lake):
    lake, outcomes = small_lake
    reg = registry()
    mini = reg.model_copy(update={"datasets": [reg.dataset(n) for n in SMALL]})
    lake.overwrite("quality", "reconciliation", pl.DataFrame(schema=reconcile.SCHEMA).to_arrow())
    result = problem_lists.build(lake, mini, AT)
    quarantined = sum(o.result.quarantined for o in outcomes.values())
    rejected = sum(d.by_handling.get("退回整改 rejected", 0) for d in result.lists)
    assert rejected == quarantined  # every quarantined row is on its department's list
    assert {d.department for d in result.lists} == set(reg.departments)
    for d in result.lists:
        for uri in d.exports:
            assert Lake(lake.root).read_bytes("quarantine", uri.split("/quarantine/", 1)[1])
    assert lake.table(*PROBLEMS.path).version() == result.ledger_version
    assert result.ledger.filter(pl.col("status") == "open").height == result.ledger.height
    dept = result.department_scores
    assert set(dept["subject"]) == {reg.dataset(n).department for n in SMALL}


def _model(**kw) -> Model:
    return Model(
        **{
            "name": "firms",
            "key": ["uscc"],
            "columns": ["uscc", "score"],
            "quasi": [],
            "classification": {"uscc": "organisation.identity"},
            "disclosure": "identified",
            **kw,
        }
    )


GRADES = {
    "uscc": {"level": "L1", "role": "none", "inherited": "L1"},
    "score": {"level": "L2", "role": "none", "inherited": "L2"},
}


def test_publication_gates_name_every_problem():
    good = pl.DataFrame({"uscc": ["a", "b"], "score": [1.0, 2.0]})
    assert check_gates(good, _model(), GRADES, []).passed
    gates = check_gates(good.vstack(good.head(1)), _model(), GRADES, ["not_null_firms_uscc"])
    assert gates.quality == ["dbt test failed: not_null_firms_uscc", "key ['uscc'] is not unique"]
    assert check_gates(good.head(0), _model(), GRADES, []).quality == ["the model is empty"]
    assert (
        "declared columns missing: ['extra']"
        in check_gates(good, _model(columns=["uscc", "score", "extra"]), GRADES, []).quality
    )
    ungraded = check_gates(good, _model(), {"uscc": GRADES["uscc"]}, [])
    assert ungraded.privacy == ["grade: score has no propagated grade"]
    secret = {**GRADES, "score": {"level": "L3", "role": "sensitive"}}
    assert [p.split(":")[0] for p in check_gates(good, _model(), secret, []).privacy] == ["grade"]
    few = check_gates(good, _model(quasi=["score"]), GRADES, [])
    assert few.privacy and few.privacy[0].startswith("k_anonymity")


def test_publishing_the_same_content_writes_no_version_and_a_change_is_logged(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    first = pl.DataFrame({"uscc": ["b", "a"], "score": [2.0, 1.0]})
    done = publish(lake, _model(), first, {"dbt_model": "model.x.firms"}, "run-1")
    assert (done.version, done.unchanged, done.changes_version) == (0, False, None)
    again = publish(lake, _model(), first.reverse(), {}, "run-2")  # same rows, other order
    assert again.unchanged and again.version == 0 and again.content_sha256 == done.content_sha256
    corrected = first.with_columns(pl.when(pl.col("uscc") == "a").then(1.5).otherwise(pl.col("score")).alias("score"))
    third = publish(lake, _model(), corrected, {}, "run-3")
    assert third.version == 1 and third.changes.rows() == [('{"uscc":"a"}', "score", "1.0", "1.5")]
    log = lake.read(*CHANGES.path)
    assert log.select("dataset", "from_version", "to_version", "run_id").row(0) == ("firms", 0, 1, "run-3")
    assert lake.table("publish", "firms").history(1)[0]["content_sha256"] == third.content_sha256
    assert lake.read("publish", "firms")["uscc"].to_list() == ["a", "b"]  # written in key order


def test_changes_cover_added_removed_and_changed_rows():
    old = pl.DataFrame({"k": [1, 2], "v": ["x", "y"]})
    new = pl.DataFrame({"k": [2, 3], "v": ["z", "w"]})
    assert changes(old, new, ["k"]).rows() == [
        ('{"k":1}', "v", "x", None),
        ('{"k":2}', "v", "y", "z"),
        ('{"k":3}', "v", None, "w"),
    ]
    assert content_hash(old, ["k"]) == content_hash(old.reverse(), ["k"]) != content_hash(new, ["k"])


def test_model_grades_propagate_from_std_seeds_earlier_models_and_unknown_lineage():
    recorded = {"theme/t": {"revenue": {"level": "L2", "role": "none"}}}
    grades = ModelGrades(lambda key: recorded.get(key, {}))
    # registration's legal representative ID is a direct identifier, pseudonymised in std (L4 → L2)
    std_level, std_role = grades.grading_of("std/amr_registration", "legal_rep_id_no")
    assert (std_level, std_role) == ("L2", "direct")
    assert grades.grading_of("std/amr_registration", "_source_file") == ("L1", "none")
    assert grades.grading_of("parameters/weights", "weight") == ("L1", "none")
    assert grades.grading_of("theme/t", "revenue") == ("L2", "none")  # recorded by an earlier run
    assert grades.grading_of("theme/t", "missing") == ("L4", "none")  # unknown column: strictest
    g = grades.grade(
        "topic/x",
        {"revenue": [("theme/t", "revenue")], "rate": [("parameters/weights", "weight")], "n": []},
        ["revenue", "rate", "n"],
        {},
    )
    assert {c: v["level"] for c, v in g.items()} == {"revenue": "L2", "rate": "L1", "n": "L1"}
    assert grades.grading_of("topic/x", "revenue") == ("L2", "sensitive")  # later models of the run see it
    blind = grades.grade("topic/y", None, ["a"], {})
    assert blind["a"]["level"] == "L4" and grades.grading_of(UNKNOWN, "a") == ("L4", "none")


def test_the_lake_is_one_door_for_tables_and_files(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    uri = lake.write_bytes("ops", "lineage/run-1.jsonl", b'{"a": 1}\n')
    assert uri == f"{lake.root}/ops/lineage/run-1.jsonl"
    assert lake.read_bytes("ops", "lineage/run-1.jsonl") == b'{"a": 1}\n'
    assert lake.read_bytes("ops", "lineage/none.jsonl") is None
    assert lake.list_files("ops", "lineage", ".jsonl") == ["lineage/run-1.jsonl"]
    assert lake.location == (tmp_path / "lake").resolve().as_uri()
    lake.append("share", "r1/t", pl.DataFrame({"x": [1]}).to_arrow())
    assert lake.delete("share", "r1") and lake.table("share", "r1/t") is None and not lake.delete("share", "r1")
    for bad in ("../escape", "a/../../b", "/abs", ""):  # traversal attack
        with pytest.raises(ValueError, match="relative and plain"):
            lake.uri("share", bad)
    with pytest.raises(ValueError, match="unknown zone"):
        lake.uri("elsewhere", "x")
    remote = Lake("s3://bucket/lake", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ALLOW_HTTP": "true"})
    assert not remote.is_local and remote.location == "s3://bucket/lake" and remote.local_path("share", "x") is None
    assert json.loads(lake.read_bytes("ops", "lineage/run-1.jsonl")) == {"a": 1}


def test_private_zones_audit_logs_rejected_files_and_keys_are_owner_only(tmp_path, monkeypatch):
    """Nothing delivered, set aside, shared or audited is readable by another account on the machine."""
    import os

    from lakehouse.lake import PRIVATE_ZONES
    from privacy import keys
    from privacy.audit import AuditLog

    lake = Lake(str(tmp_path / "lake"))
    for zone in ("raw", "publish", "quarantine"):
        lake.overwrite(zone, "t", pl.DataFrame({"a": [1]}).to_arrow())
    lake.write_bytes("ops", "x/y.json", b"{}")
    (tmp_path / "lake" / "std").mkdir(mode=0o755)  # left open by an older version: closed on the next write
    os.chmod(tmp_path / "lake" / "std", 0o755)
    lake.overwrite("std", "t", pl.DataFrame({"a": [1]}).to_arrow())
    mode = lambda p: oct(p.stat().st_mode & 0o777)  # noqa: E731
    for zone in ("raw", "quarantine", "ops", "std"):
        assert zone in PRIVATE_ZONES and mode(tmp_path / "lake" / zone) == "0o700", zone
    assert mode(tmp_path / "lake" / "publish") != "0o700"  # published data stays readable downstream

    log = AuditLog(tmp_path / "audit" / "privileged.jsonl")
    log.append("policy.change", sha256="x")
    assert mode(log.path.parent) == "0o700" and mode(log.path) == "0o600" and mode(log.head) == "0o600"
    monkeypatch.delenv("USER", raising=False)
    monkeypatch.delenv("SHUCANG_ACTOR", raising=False)
    entry = log.append("policy.change", sha256="y")
    assert entry["actor"] != "unknown" and "@" in entry["actor"]  # the account and host, without $USER

    monkeypatch.delenv("SHUCANG_PSEUDONYM_KEYS", raising=False)
    ring_file = tmp_path / "keys" / "ring.json"
    keys.load(log, ring_file)
    assert mode(ring_file.parent) == "0o700" and mode(ring_file) == "0o600"


def test_a_refused_delivery_lands_in_an_owner_only_rejected_area(tmp_path):
    ds = registry().dataset("stats_annual")
    landing = tmp_path / "landing" / ds.landing
    landing.mkdir(parents=True)
    (landing / "统计_年报_2023.xlsx").write_bytes(b"")  # empty: refused
    Collector(ds, Lake(str(tmp_path / "lake")), tmp_path / "landing", tmp_path / "rejected", "b1").run()
    assert oct((tmp_path / "rejected").stat().st_mode & 0o777) == "0o700"
    assert any((tmp_path / "rejected").rglob("*.reason.json"))


def test_identifiers_and_free_text_caught_by_a_rule_are_masked_in_quarantine(small_lake, tmp_path):
    """A mistyped resident ID or mobile is not copied verbatim into quarantine (and so into the problem lists
    sent to departments): masked, with the row reference leading back to raw through the audited path."""
    from privacy import policy

    lake = Lake(str(tmp_path / "lake"))
    ds = registry().dataset("amr_registration")
    raw = small_lake[0].read("raw", ds.id)
    bad = raw.head(30).with_columns(
        pl.col("legal_rep_id_no").str.slice(0, 17),  # one digit short
        pl.lit("1381234567").alias("contact_mobile"),  # ten digits
        pl.lit("_补充.csv").alias("_source_file"),
    )
    lake.append("raw", ds.id, pl.concat([raw, bad]).to_arrow())
    out = standardise(lake, ds, rules_for(ds.id), at=AT, mask=lambda f: policy.mask_findings(f, ds))
    findings = lake.read(*FINDINGS.path)
    ids = findings.filter(pl.col("column") == "legal_rep_id_no")
    mobiles = findings.filter(pl.col("column") == "contact_mobile")
    assert ids.height >= 30 and mobiles.height >= 30
    delivered = set(bad["legal_rep_id_no"]) | set(bad["contact_mobile"]) | set(raw["legal_rep_id_no"].drop_nulls())
    for v in [*ids["value"].drop_nulls(), *mobiles["value"].drop_nulls()]:
        assert v not in delivered and "*" in v
    assert ids.filter(pl.col("source_file") == "_补充.csv")["row_number"].sort().to_list() == list(range(1, 31))
    unmasked = out.result.findings.filter(pl.col("column") == "legal_rep_id_no")["value"]
    assert set(unmasked) & set(bad["legal_rep_id_no"])  # masking is the policy applied to what is kept


def test_an_audit_log_cut_back_with_an_older_head_restored_is_caught(tmp_path):
    from privacy.audit import AuditLog

    log = AuditLog(tmp_path / "audit" / "privileged.jsonl")
    log.append("key.create", version=1)
    lines, head = log.path.read_text(encoding="utf-8"), log.head.read_text()
    log.append("reidentify", dataset="amr_registration", reason="信访")  # the entry someone wants gone
    assert log.verify().ok
    log.path.write_text(lines, encoding="utf-8")
    log.head.write_text(head)  # the head file as it was before: consistent with the shortened log
    verdict = log.verify()
    assert not verdict.ok and "older head restored" in verdict.problem
    assert log.head_copy.parent != log.path.parent  # the copy is outside the log's folder


def test_a_periodic_model_publishes_only_the_periods_that_changed(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    model = _model(key=["uscc", "period"], columns=["uscc", "period", "score"], period="period")
    first = pl.DataFrame(
        {"uscc": ["a", "a", "b", "b"], "period": ["2023-01", "2023-02", "2023-01", "2023-02"], "score": [1.0, 2, 3, 4]}
    )
    assert publish(lake, model, first, {}, "run-1").version == 0
    # February corrected for b, and March arrives: two periods change, January is left alone
    second = first.with_columns(
        pl.when((pl.col("uscc") == "b") & (pl.col("period") == "2023-02")).then(4.5).otherwise("score").alias("score")
    ).vstack(pl.DataFrame({"uscc": ["a"], "period": ["2023-03"], "score": [5.0]}))
    done = publish(lake, model, second, {}, "run-2")
    assert done.version == 1 and not done.unchanged
    commit = lake.table("publish", "firms").history(1)[0]
    assert json.loads(commit["periods"]) == ["2023-02", "2023-03"]
    assert (
        "2023-02" in commit["operationParameters"]["predicate"]
        and "2023-01" not in commit["operationParameters"]["predicate"]
    )
    got = lake.read("publish", "firms").sort("uscc", "period")
    assert got.equals(second.sort("uscc", "period"))
    assert done.changes.rows() == [
        ('{"uscc":"a","period":"2023-03"}', "score", None, "5.0"),
        ('{"uscc":"b","period":"2023-02"}', "score", "4.0", "4.5"),
    ]
    # a period that disappears is removed
    third = second.filter(pl.col("period") != "2023-03")
    publish(lake, model, third, {}, "run-3")
    assert lake.read("publish", "firms").sort("uscc", "period").equals(third.sort("uscc", "period"))
    assert publish(lake, model, third.reverse(), {}, "run-4").unchanged
    # the change log compares only the replaced periods — and a firm whose row moves to another period
    # (a key without the period) touches both, so the move is logged
    moved_model = _model(name="latest", key=["uscc"], columns=["uscc", "period", "score"], period="period")
    latest = pl.DataFrame({"uscc": ["a", "b", "c"], "period": ["2023-01", "2023-01", "2023-02"], "score": [1.0, 2, 3]})
    publish(lake, moved_model, latest, {}, "run-5")
    moved = latest.with_columns(
        pl.when(pl.col("uscc") == "b").then(pl.lit("2023-02")).otherwise("period").alias("period")
    )
    logged = publish(lake, moved_model, moved, {}, "run-6")
    assert logged.changes.rows() == [('{"uscc":"b"}', "period", "2023-01", "2023-02")]
    assert lake.read("publish", "latest").sort("uscc").equals(moved.sort("uscc"))


@pytest.mark.parametrize("period_type", [pl.String, pl.Int64])
def test_a_periodic_model_reads_and_writes_only_the_periods_whose_warehouse_fingerprint_changed(tmp_path, period_type):
    """Publication as the publish asset runs it: fingerprints in DuckDB, only changed periods read, gated and
    replaced — and the table equals a publication of the whole model at every step."""
    import duckdb
    import pyarrow as pa

    from exchange import publication

    lake, full = Lake(str(tmp_path / "lake")), Lake(str(tmp_path / "full"))
    model = _model(key=["uscc", "period"], columns=["uscc", "period", "score"], period="period")
    con = duckdb.connect()
    con.execute("create table m (uscc varchar, period varchar, score double)")
    con.execute("insert into m values ('a','2021',1),('b','2021',2),('a','2022',3),('b','2022',4)")
    cast = "period::bigint" if period_type == pl.Int64 else "period"
    relation = f"(select uscc, {cast} as period, score from m)"

    def cycle(basis="b1", run="r"):
        prints = publication.fingerprints(con, relation, model)
        loaded = publication.to_load(lake, model, prints, basis)
        if loaded == []:
            return loaded, None
        frame = publication.load(con, relation, model, loaded)
        assert publication.rows(prints) == con.sql(f"select count(*) from {relation}").fetchall()[0][0]
        commit = {"fingerprints": json.dumps(prints), "gate_basis": basis}
        done = publish(lake, model, frame, commit, run, loaded)
        publication.record(lake, "firms", done.version, basis, prints)
        whole = con.sql(f"select * from {relation}").pl()
        publish(full, model, whole, {}, run)  # the same model published whole, as before
        got = lake.read("publish", "firms").sort("uscc", "period")
        assert got.equals(whole.sort("uscc", "period"))
        assert lake.table("publish", "firms").history(1)[0]["content_sha256"] == done.content_sha256
        assert done.content_sha256 == full.table("publish", "firms").history(1)[0]["content_sha256"]
        return loaded, done

    assert cycle()[0] is None  # first publication: everything
    assert cycle()[0] == []  # nothing changed: nothing read, no version
    assert lake.table("publish", "firms").version() == 0
    table = lake.table("publish", "firms")
    assert table.metadata().partition_columns == ["period"]  # one folder per period

    def files_of(period: str) -> set[str]:
        adds = pa.table(lake.table("publish", "firms").get_add_actions(flatten=True)).to_pydict()
        return {p for p, v in zip(adds["path"], adds["partition.period"], strict=True) if str(v) == period}

    kept = files_of("2021")
    con.execute("update m set score = 3.5 where uscc = 'a' and period = '2022'")
    con.execute("insert into m values ('a','2023',5)")
    loaded, done = cycle()
    assert files_of("2021") == kept  # a period not replaced keeps its files: nothing of it was rewritten
    assert loaded == ["2022", "2023"] and done.periods == ["2022", "2023"] and done.written == 3
    assert done.changes.rows() == [
        (
            '{"uscc":"a","period":"2022"}' if period_type == pl.String else '{"uscc":"a","period":2022}',
            "score",
            "3.0",
            "3.5",
        ),
        (
            '{"uscc":"a","period":"2023"}' if period_type == pl.String else '{"uscc":"a","period":2023}',
            "score",
            None,
            "5.0",
        ),
    ]
    con.execute("delete from m where period = '2021'")  # a period that vanishes is removed
    loaded, done = cycle()
    assert loaded == ["2021"] and done.periods == ["2021"] and done.written == 0
    assert cycle(basis="b2")[0] is None  # the gates' basis changed: every row read and gated again
    # a version published before fingerprints were recorded (none on its commit): read whole once; the
    # unchanged content writes no version, but its fingerprints are kept for the next publication
    legacy = Lake(str(tmp_path / "legacy"))
    whole = con.sql(f"select * from {relation}").pl()
    publish(legacy, model, whole, {}, "old")
    prints = publication.fingerprints(con, relation, model)
    assert publication.to_load(legacy, model, prints, "b1") is None
    done = publish(legacy, model, whole, {}, "new")
    assert done.unchanged and done.version == 0
    publication.record(legacy, "firms", done.version, "b1", prints)
    assert publication.to_load(legacy, model, prints, "b1") == []
    # kept for another version (a write the record did not follow): the version's commit decides
    legacy.overwrite_where("publish", "firms", whole.head(0).to_arrow(), "period IN ('1999')")
    assert publication.to_load(legacy, model, prints, "b1") is None
    # a table deleted and published anew: what was kept for the old one says nothing about it
    legacy.overwrite("publish", "firms", whole.to_arrow())
    publication.record(legacy, "firms", legacy.table("publish", "firms").version(), "b1", prints)
    assert publication.to_load(legacy, model, prints, "b1") == []
    shutil.rmtree(tmp_path / "legacy" / "publish" / "firms")
    legacy.overwrite("publish", "firms", whole.to_arrow())
    for _ in range(legacy.table("publish", "firms").version(), 2):
        legacy.overwrite("publish", "firms", whole.to_arrow())
    assert publication.to_load(legacy, model, prints, "b1") is None
    # a model whose key lacks the period is read whole whenever it changed
    assert not publication.incremental(_model(key=["uscc"], columns=["uscc", "period"], period="period"))
    assert not publication.incremental(_model(key=["uscc", "period"], quasi=["region"], period="period"))


def test_the_gate_basis_changes_with_grades_failed_tests_types_k_and_the_declaration():
    from exchange.publication import gate_basis

    model = _model()
    base = gate_basis(model, {"uscc": {"level": "L2"}}, [], {"uscc": "VARCHAR"}, 5)
    assert base == gate_basis(model, {"uscc": {"level": "L2"}}, [], {"uscc": "VARCHAR"}, 5)
    others = [
        gate_basis(model, {"uscc": {"level": "L3"}}, [], {"uscc": "VARCHAR"}, 5),
        gate_basis(model, {"uscc": {"level": "L2"}}, ["not_null_x"], {"uscc": "VARCHAR"}, 5),
        gate_basis(model, {"uscc": {"level": "L2"}}, [], {"uscc": "BIGINT"}, 5),
        gate_basis(model, {"uscc": {"level": "L2"}}, [], {"uscc": "VARCHAR"}, 10),
        gate_basis(_model(disclosure="deidentified"), {"uscc": {"level": "L2"}}, [], {"uscc": "VARCHAR"}, 5),
    ]
    assert base not in others and len(set(others)) == len(others)
