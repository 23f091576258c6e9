"""Privacy library: grading crosswalk, keys and rotation, pseudonyms, transforms, audit chain, scanner."""

import hashlib
import hmac
import json
import os
import stat

import polars as pl
import pytest

from assets.ingest.collector import Collector
from lakehouse.lake import Lake
from lakehouse.registry import registry
from privacy import grading, keys, scan, transforms
from privacy.audit import AuditLog
from privacy.keys import KeyRing

RING = KeyRing(1, {1: "0123456789abcdef" * 4}, "test")


def _one(expr, values, dtype=pl.String):
    return pl.DataFrame({"v": values}, schema={"v": dtype}).select(expr(pl.col("v"))).to_series().to_list()


def test_every_registered_column_is_classified_and_the_crosswalk_holds():
    for ds in registry().datasets:
        assert grading.unclassified(ds) == [], ds.id
        for c in ds.columns:
            grading.grading(ds, c)  # raises on a value outside the vocabulary
    cross = {
        lv: (grading.Grading("time", lv, "none").grade, grading.Grading("time", lv, "none").miit)
        for lv in ("L1", "L2", "L3", "L4")
    }
    assert cross == {"L1": ("general", 1), "L2": ("general", 1), "L3": ("important", 2), "L4": ("core", 3)}
    amr = registry().dataset("amr_registration")
    assert grading.dataset_level(amr) == "L4"  # 就高从严: the resident-ID column grades the dataset
    assert grading.dataset_level(registry().dataset("ent_telemetry")) == "L2"
    assert set(grading.direct_identifiers(amr)) == {"legal_rep_name", "legal_rep_id_no", "contact_mobile"}


def test_pseudonyms_are_standard_hmac_sha256_versioned_and_consistent_across_datasets():
    ric = "11010519491231002X"
    got = _one(lambda e: transforms.pseudonym(e, RING, "ric"), [ric, None])
    mac = hmac.new(RING.keys[1].encode(), ("ric\x1f" + ric).encode(), hashlib.sha256).hexdigest()
    assert got == [f"k1:{mac[:32]}", None]
    # two datasets pseudonymised separately still join on the person
    a = pl.DataFrame({"id": [ric, "330102199001011234"], "x": [1, 2]})
    b = pl.DataFrame({"id": ["330102199001011234", ric, ric], "y": [10, 20, 30]})
    pa_ = a.with_columns(transforms.pseudonym(pl.col("id"), RING, "ric"))
    pb_ = b.with_columns(transforms.pseudonym(pl.col("id"), RING, "ric"))
    assert pa_.join(pb_, on="id").sort("y")["x"].to_list() == a.join(b, on="id").sort("y")["x"].to_list()
    # another domain never gives the same pseudonym for an equal value
    assert _one(lambda e: transforms.pseudonym(e, RING, "mobile"), [ric]) != got[:1]


def test_the_key_file_is_created_once_private_and_rotation_keeps_old_versions(tmp_path, monkeypatch):
    monkeypatch.delenv(keys.ENV_KEYS, raising=False)
    path, log = tmp_path / "k" / "keys.json", AuditLog(tmp_path / "audit.jsonl")
    first = keys.load(log, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and first.current == 1
    assert keys.load(log, path) == first  # not re-created
    rotated = keys.rotate(log, path)
    assert rotated.current == 2 and rotated.keys[1] == first.keys[1] and rotated.keys[2] != first.keys[1]
    old = _one(lambda e: transforms.pseudonym(e, first, "ric"), ["330102199001011234"])[0]
    new = _one(lambda e: transforms.pseudonym(e, rotated, "ric"), ["330102199001011234"])[0]
    assert old.startswith("k1:") and new.startswith("k2:") and old != new
    # an old pseudonym can still be matched with the version it names
    assert _one(lambda e: transforms.pseudonym(e, rotated, "ric", version=1), ["330102199001011234"])[0] == old
    assert [e["action"] for e in log.entries()] == ["key.create", "key.rotate"] and log.verify().ok
    # keys from the environment win, and are validated
    monkeypatch.setenv(keys.ENV_KEYS, json.dumps({"current": 3, "keys": {"3": "ab" * 32}}))
    assert keys.load(log, path).current == 3
    monkeypatch.setenv(keys.ENV_KEYS, json.dumps({"current": 3, "keys": {"3": "short"}}))
    with pytest.raises(ValueError, match="version 3"):
        keys.load(log, path)


def test_masking_generalisation_suppression_and_coding():
    assert _one(transforms.mask_ric, ["330102199001011234", None]) == ["330***********1234", None]
    assert _one(transforms.mask_mobile, ["13812345678"]) == ["138****5678"]
    assert _one(transforms.birth_year, ["330102199001011234"]) == [1990]
    assert _one(lambda e: transforms.age_band(e, 2023), ["330102199001011234"]) == ["30-39"]
    assert _one(transforms.district, ["浙江省台州市黄岩区西城街道劳动北路1号"]) == ["浙江省台州市黄岩区"]
    assert _one(lambda e: transforms.region_prefix(e, "city"), ["331003"]) == ["331000"]
    assert _one(transforms.suppress, ["x"]) == [None]
    assert _one(lambda e: transforms.top_bottom(e, 0, 100), [-5.0, 50.0, 500.0], pl.Float64) == [0.0, 50.0, 100.0]


def test_redaction_removes_personal_information_from_free_text_and_keeps_the_rest():
    texts = [
        "联系人王小明，电话13912345678",
        "经办人：李四 13812345678，请核实",
        "已电话联系张三(15012345678)确认数据",
        "证件11010519491231002X已核验，邮箱 a.b@example.com",
        "产能扩张中，订单同比增长12%",
    ]
    out = _one(transforms.redact, texts)
    assert out[:3] == [
        "联系人[姓名]，电话[手机号]",
        "经办人：[姓名] [手机号]，请核实",
        "已电话联系[姓名]([手机号])确认数据",
    ]
    assert out[3] == "证件[身份证号]已核验，邮箱 [邮箱]" and out[4] == texts[4]
    assert not any(_one(scan.pi_in_text, out))


def test_the_audit_log_detects_edits_deletions_reordering_and_truncation(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(5):
        log.append("key.use", actor="steward-a", dataset=f"std.d{i}", rows=i)
    assert log.verify().ok and log.verify().entries == 5
    lines = log.path.read_text().splitlines()

    def tampered(new_lines):
        log.path.write_text("\n".join(new_lines) + "\n")
        verdict = log.verify()
        log.path.write_text("\n".join(lines) + "\n")
        return verdict

    edited = json.loads(lines[2])
    edited["detail"]["rows"] = 999
    v = tampered(lines[:2] + [json.dumps(edited)] + lines[3:])
    assert not v.ok and "line 3" in v.problem and "edited" in v.problem
    v = tampered(lines[:1] + lines[2:])
    assert not v.ok and "line 2" in v.problem
    v = tampered([lines[1], lines[0], *lines[2:]])
    assert not v.ok and "line 1" in v.problem
    v = tampered(lines[:4])
    assert not v.ok and "truncated" in v.problem
    assert log.verify().ok


def test_luhn():
    cards = ["4111111111111111", "4111111111111112", "6222021234567890128", "6222021234567890129", "79927398713"]
    assert _one(scan.luhn_ok, cards) == [True, False, True, False, True]


@pytest.fixture(scope="module")
def raw_lake(generated, tmp_path_factory):
    import shutil

    work = tmp_path_factory.mktemp("scan")
    shutil.copytree(generated / "landing", work / "landing")
    lake = Lake(str(work / "lake"))
    for ds in registry().datasets:
        Collector(ds, lake, work / "landing", work / "rejected", "b1").run()
    return lake


def test_the_scanner_finds_exactly_the_declared_personal_columns(raw_lake):
    """Column-level precision and recall: proposed direct identifiers = declared ones, in every dataset."""
    for ds in registry().datasets:
        found = scan.scan_frame(raw_lake.read("raw", ds.id), {c.name: c.source for c in ds.columns})
        proposed = {f.column: f for f in found}
        declared_direct = {c.name for c in ds.columns if c.role == "direct"}
        assert {c for c, f in proposed.items() if f.role == "direct"} == declared_direct, ds.id
        for c in declared_direct:
            assert proposed[c].by == "content" and proposed[c].share > 0.9, (ds.id, c)
        free = {c.name for c in ds.columns if c.classification == "free_text"}
        assert {c for c, f in proposed.items() if f.kind == "free_text_pi"} == free, ds.id


def test_the_scanner_finds_exactly_the_personal_information_hidden_in_remarks(raw_lake, manifest):
    landed = {f["path"] for f in manifest["files"] if f["expected_status"] == "landed"}
    for key in ("amr_registration.pii_in_remarks", "ent_production.pii_in_remarks"):
        truth = {(p, r) for p, r in manifest["defects"][key]["rows"] if p in landed}
        raw = raw_lake.read("raw", key.split(".")[0])
        hits = raw.filter(scan.pi_in_text(pl.col("remarks")))
        assert set(hits.select("_source_file", "_row_number").iter_rows()) == truth, key
        assert len(truth) > 10


@pytest.mark.integration
def test_an_unclassified_column_keeps_its_dataset_in_raw(workdir):
    """A new or drifted column nobody classified blocks promotion beyond raw, with the reason."""
    import dagster as dg

    import assets.clean
    import assets.defs
    from orchestration import keys, runs
    from orchestration.resources import resources
    from orchestration.settings import settings

    reg = registry()
    ds = reg.dataset("eco_emissions")
    columns = [c.model_copy(update={"classification": None}) if c.name == "permit_no" else c for c in ds.columns]
    unclassified_ds = ds.model_copy(update={"columns": columns})
    raw = next(
        a for a in assets.defs.defs.assets if isinstance(a, dg.AssetsDefinition) and keys.key("raw", ds.id) in a.keys
    )
    s = settings({"SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(workdir)})
    result = runs.materialize(
        [raw, assets.clean._std_asset(reg, unclassified_ds)],
        resources=resources(s),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "classified")
    assert not check.passed and check.metadata["unclassified"].value == "permit_no"
    # raw (and the collection log it writes) only: nothing beyond raw
    assert [m.asset_key.path for m in result.get_asset_materialization_events()] == [
        keys.key("raw", ds.id).path,
        ["ops", "collect_log"],
    ]
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "not classified" in failure.step_failure_data.user_failure_data.description
    assert not (workdir / "lake" / "std" / ds.id).exists()


def test_the_privacy_scan_agrees_with_every_declaration(raw_lake):
    from privacy.scan_registry import scan_registry

    found, _ = scan_registry(registry(), raw_lake)
    assert found.filter(~pl.col("agrees")).height == 0
    direct = found.filter(pl.col("proposed_role") == "direct")
    assert set(direct.select("dataset_id", "column").iter_rows()) == {
        (ds.id, c.name) for ds in registry().datasets for c in ds.columns if c.role == "direct"
    }


def test_the_privacy_scan_reads_again_only_what_changed_and_always_judges_todays_declarations(raw_lake):
    from privacy.scan_registry import scan_registry

    reg = registry()
    first, versions = scan_registry(reg, raw_lake)
    # nothing delivered since: the findings are kept (same scan time), nothing is read again
    again, same = scan_registry(reg, raw_lake, first, versions)
    assert same == versions and again.equals(first)
    # a steward lowers a declared grade: the kept findings are judged against the declaration of today
    ds = reg.dataset("amr_registration")
    column = next(c for c in ds.columns if c.role == "direct")
    lowered = ds.model_copy(
        update={"columns": [c.model_copy(update={"grade": "L1"}) if c is column else c for c in ds.columns]}
    )
    changed = reg.model_copy(update={"datasets": [lowered if d.id == ds.id else d for d in reg.datasets]})
    judged, _ = scan_registry(changed, raw_lake, first, versions)
    row = judged.filter((pl.col("dataset_id") == ds.id) & (pl.col("column") == column.name))
    assert row["declared_grade"].to_list() == ["L1"] and row["agrees"].to_list() == [False]
    # a dataset whose raw moved on is scanned again (a new scan time); the others keep theirs
    stale = {**versions, ds.id: versions[ds.id] - 1}
    rescanned, _ = scan_registry(reg, raw_lake, first, stale)
    times = dict(rescanned.group_by("dataset_id").agg(pl.col("scanned_at").max()).iter_rows())
    before = dict(first.group_by("dataset_id").agg(pl.col("scanned_at").max()).iter_rows())
    assert times[ds.id] > before[ds.id]
    assert all(times[d] == before[d] for d in times if d != ds.id)
    assert rescanned.drop("scanned_at").equals(first.drop("scanned_at"))


def test_the_publication_gate_blocks_identifiers_high_grades_and_small_classes():
    from privacy import gate

    g = {
        "industry": grading.Grading("organisation.registration", "L1", "quasi"),
        "region": grading.Grading("organisation.location", "L1", "quasi"),
        "revenue": grading.Grading("organisation.finance", "L3", "sensitive"),
        "person": grading.Grading("personal.identity", "L4", "direct"),
    }
    rows = [("C29", "331003", 1.0, "p")] * 6 + [("C35", "331003", 2.0, "q")] * 5 + [("C35", "331004", 3.0, "r")] * 2
    frame = pl.DataFrame(rows, schema=["industry", "region", "revenue", "person"], orient="row")
    problems = {p.rule for p in gate.check(frame, g, quasi=["industry", "region"], k=5)}
    assert problems == {"direct_identifier", "grade", "k_anonymity"}
    # transformed, aggregated and with the small class suppressed, it passes
    safe = frame.drop("person").filter(pl.col("region") != "331004")
    assert gate.check(safe, g, {"revenue": "aggregated"}, quasi=["industry", "region"], k=5) == []
    assert gate.smallest_class(frame, ["industry", "region"]) == 2
    # a real resident ID anywhere is found, whatever the declarations say
    leaked = safe.with_columns(pl.lit("证件11010519491231002X").alias("note"))
    assert [p.rule for p in gate.check(leaked, g, {"revenue": "aggregated"})] == ["scanner"]
    cells = gate.suppress_small_cells(frame.group_by("region").len("n").sort("region"), "n", 5, [])
    assert cells["n"].to_list() == [11, None] and cells["suppressed"].to_list() == [False, True]


def test_differential_privacy_noise_and_budget(tmp_path):
    from privacy import dp

    log = AuditLog(tmp_path / "audit.jsonl")
    budget = dp.Budget(tmp_path / "budget.json", total=1.0, audit=log)
    frame = pl.DataFrame({"industry": ["C29"] * 400 + ["C35"] * 100})
    out = dp.release_counts(frame, ["industry"], 0.5, budget, "firms_by_industry", seed=7)
    assert out["industry"].to_list() == ["C29", "C35"] and (out["count"] >= 0).all()
    assert abs(out["count"][0] - 400) < 40  # Laplace(2): 40 is 20 scales away
    dp.release_counts(frame, ["industry"], 0.5, budget, "firms_by_industry")
    with pytest.raises(dp.BudgetExceeded, match="firms_by_industry"):
        dp.release_counts(frame, ["industry"], 0.1, budget, "firms_by_industry")
    assert budget.spent("firms_by_industry") == pytest.approx(1.0)
    assert budget.spent("another_release") == 0.0
    # the noise has the Laplace scale Δ/ε: variance 2b²
    noise = dp.laplace(pl.Series([0.0] * 200_000), 1.0, 0.5, seed=1)
    assert noise.var() == pytest.approx(2 * 2.0**2, rel=0.05) and abs(noise.mean()) < 0.05
    assert [e["action"] for e in log.entries()] == ["dp.spend", "dp.spend"] and log.verify().ok


def test_the_audit_and_keys_commands(tmp_path, monkeypatch, capsys):
    from orchestration.cli import main as cli

    monkeypatch.delenv(keys.ENV_KEYS, raising=False)
    monkeypatch.setenv("SHUCANG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SHUCANG_AUDIT_LOG", str(tmp_path / "data" / "audit" / "privileged.jsonl"))
    monkeypatch.setenv("SHUCANG_KEY_FILE", str(tmp_path / "keys.json"))
    assert cli.main(["keys", "status"]) == 0 and cli.main(["keys", "rotate"]) == 0
    assert "versions [1, 2], current 2" in capsys.readouterr().out
    assert cli.main(["audit", "verify"]) == 0 and "2 entries, chain intact" in capsys.readouterr().out
    log = tmp_path / "data" / "audit" / "privileged.jsonl"
    log.write_text(log.read_text().replace('"previous": 1', '"previous": 7'))
    assert cli.main(["audit", "verify"]) == 1 and "TAMPERED" in capsys.readouterr().out


def test_grades_propagate_along_column_lineage_highest_first_unless_an_approved_transform_lowers_them():
    from privacy.propagation import propagate

    levels = {("a", "ric"): "L4", ("a", "revenue"): "L2", ("b", "region"): "L1", ("b", "remarks"): "L3"}
    deps = {
        "person": [("a", "ric")],
        "person_pseudonym": [("a", "ric")],
        "revenue_by_region": [("a", "revenue"), ("b", "region")],
        "mixed": [("a", "revenue"), ("b", "remarks")],
        "count": [("a", "ric"), ("b", "region")],
    }
    got = propagate(
        deps,
        lambda d, c: levels[(d, c)],
        {"person_pseudonym": "pseudonymised", "count": "aggregated", "revenue_by_region": "aggregated"},
    )
    assert got == {"person": "L4", "person_pseudonym": "L2", "revenue_by_region": "L1", "mixed": "L3", "count": "L1"}
    with pytest.raises(ValueError, match="approved"):
        propagate(deps, lambda d, c: levels[(d, c)], {"person": "renamed"})


def test_roles_by_zone_and_reidentification_only_by_stewards_with_a_reason(raw_lake, tmp_path):
    from privacy import access

    steward = access.Principal("li", "steward")
    modeler = access.Principal("wang", "modeler")
    consumer = access.Principal("app", "consumer", department="economy")
    assert access.read(raw_lake, steward, "raw", "amr_registration").height > 900
    with pytest.raises(access.AccessDenied, match="raw is for"):
        access.read(raw_lake, modeler, "raw", "amr_registration")
    assert access.can_read(modeler, "std") and not access.can_read(consumer, "std")
    assert access.can_read(consumer, "publish") and not access.can_read(consumer, "quarantine")
    with pytest.raises(ValueError, match="department"):
        access.Principal("x", "consumer")

    log = AuditLog(tmp_path / "audit.jsonl")
    raw = raw_lake.read("raw", "amr_registration")
    original = raw["legal_rep_id_no"].drop_nulls()[0].strip().upper()
    pseudo = _one(lambda e: transforms.pseudonym(e, RING, "ric"), [original])[0]
    with pytest.raises(access.AccessDenied):
        access.reidentify(raw_lake, modeler, RING, log, "amr_registration", "legal_rep_id_no", pseudo, "audit")
    found = access.reidentify(
        raw_lake, steward, RING, log, "amr_registration", "legal_rep_id_no", pseudo, "complaint 2023-117"
    )
    assert found == [original]
    assert [e["action"] for e in log.entries()] == ["reidentify.denied", "reidentify"] and log.verify().ok
    assert log.entries()[-1]["detail"]["reason"] == "complaint 2023-117"
    # a change of the privacy configuration is recorded once
    assert access.record_policy(log) and not access.record_policy(log)


def test_the_export_command_enforces_roles(raw_lake, tmp_path, monkeypatch, capsys):
    from orchestration.cli import main as cli

    monkeypatch.setenv("LAKE_ROOT", raw_lake.root)
    monkeypatch.setenv("SHUCANG_DATA_DIR", str(tmp_path))
    out = tmp_path / "x.parquet"
    assert cli.main(["export", "raw/amr_registration", str(out), "--role", "modeler", "--as", "wang"]) == 3
    assert "may not read raw/amr_registration" in capsys.readouterr().err and not out.exists()
    assert cli.main(["export", "raw/amr_registration", str(out), "--role", "steward", "--as", "li"]) == 0
    assert pl.read_parquet(out).height > 900


@pytest.mark.integration
def test_after_key_rotation_std_is_repseudonymised_and_old_pseudonyms_still_match(workdir, monkeypatch):
    import dagster as dg

    import assets.defs
    from orchestration import runs
    from orchestration.resources import resources
    from orchestration.settings import settings

    monkeypatch.delenv(keys.ENV_KEYS, raising=False)
    monkeypatch.setenv("SHUCANG_KEY_FILE", str(workdir / "keys.json"))
    s = settings({"SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(workdir)})
    wanted = {("raw", "raw_amr_registration"), ("std", "amr_registration")}
    selection = [
        a
        for a in assets.defs.defs.assets
        if isinstance(a, dg.AssetsDefinition) and any(tuple(k.path) in wanted for k in a.keys)
    ]
    instance = dg.DagsterInstance.ephemeral()
    assert runs.materialize(selection, resources=resources(s), instance=instance).success
    lake = Lake(s.lake_root)
    before = lake.read("std", "amr_registration").select("uscc", "legal_rep_id_no")
    ring = keys.rotate(AuditLog(s.audit_log), s.key_file)
    assert runs.materialize(selection[1:], resources=resources(s), instance=instance).success
    after = lake.read("std", "amr_registration").select("uscc", "legal_rep_id_no")
    assert before["legal_rep_id_no"].drop_nulls().str.starts_with("k1:").all()
    assert after["legal_rep_id_no"].drop_nulls().str.starts_with("k2:").all()
    # the old pseudonyms are still reproducible with key version 1 from the same std values
    raw_ids = lake.read("raw", "amr_registration")["legal_rep_id_no"].str.strip_chars().str.to_uppercase()
    old = set(_one(lambda e: transforms.pseudonym(e, ring, "ric", version=1), raw_ids.to_list()))
    assert set(before["legal_rep_id_no"].drop_nulls()) <= old
    actions = [e["action"] for e in AuditLog(s.audit_log).entries()]
    assert actions.count("key.use") == 2 and "key.rotate" in actions and AuditLog(s.audit_log).verify().ok


def test_grade_overrides_are_stewards_only_audited_and_regrade_the_catalogue(tmp_path, monkeypatch, capsys):
    import datetime as dt

    import dagster as dg

    from assets import catalogue_entries
    from orchestration.cli import main as cli
    from orchestration.instance import prepare

    monkeypatch.setenv("SHUCANG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHUCANG_AUDIT_LOG", str(tmp_path / "audit" / "privileged.jsonl"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    prepare(tmp_path / "home")
    args = ["grade-override", "std/amr_registration", "legal_rep_id_no", "L3", "--reason", "review 2023-12"]
    assert cli.main([*args, "--role", "modeler", "--as", "wang"]) == 3
    assert cli.main([*args, "--role", "steward", "--as", "li"]) == 0
    assert "L2 → L3" in capsys.readouterr().out
    # the write is a materialisation of the catalogue/grade_overrides asset, as the UI shows it
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["catalogue", "grade_overrides"]))
    meta = event.asset_materialization.metadata
    assert (meta["column"].value, meta["level"].value, meta["delta_version"].value) == ("legal_rep_id_no", "L3", 0)
    lake = Lake(str(tmp_path / "lake"))
    datasets, columns = catalogue_entries.build(registry(), lake, dt.datetime.now(dt.UTC))
    col = columns.filter((pl.col("zone") == "std") & (pl.col("column") == "legal_rep_id_no")).row(0, named=True)
    assert (col["effective_grade"], col["grade_overridden"]) == ("L3", True)
    std = datasets.filter((pl.col("dataset_id") == "amr_registration") & (pl.col("zone") == "std")).row(0, named=True)
    assert (std["grade"], std["grade_national"], std["miit_level"]) == ("L3", "important", 2)
    raw = datasets.filter((pl.col("dataset_id") == "amr_registration") & (pl.col("zone") == "raw")).row(0, named=True)
    assert raw["grade"] == "L4"  # only the overridden zone changes
    log = AuditLog(tmp_path / "audit" / "privileged.jsonl")
    assert [e["action"] for e in log.entries()] == ["grade.override.denied", "grade.override"] and log.verify().ok
    assert log.entries()[-1]["detail"]["reason"] == "review 2023-12"


def test_namesakes_never_share_a_name_pseudonym_and_one_person_keeps_one(raw_lake, tmp_path):
    """Seven people named 王伟 are seven pseudonyms; the same legal representative (same resident ID) is one;
    a legal representative and a production reporter of the same name never share one; a name without the
    person's identifier gets a pseudonym of its own."""
    from privacy import access, policy

    reg = registry()
    amr, prod = reg.dataset("amr_registration"), reg.dataset("ent_production")

    def std(ds, **columns):
        n = len(next(iter(columns.values())))
        frame = pl.DataFrame(
            {
                **{c: [None] * n for c in policy.std_transforms(ds)},
                **columns,
                "_file_sha256": ["f"] * n,
                "_row_number": list(range(1, n + 1)),
            },
            schema_overrides={c: pl.String for c in policy.std_transforms(ds)},
        )
        return policy.apply_std(frame, ds, RING)

    ids = [f"33010219900101{i:03d}X" for i in range(7)]
    seven = std(amr, legal_rep_name=["王伟"] * 7, legal_rep_id_no=ids)["legal_rep_name"]
    assert seven.n_unique() == 7
    again = std(amr, legal_rep_name=["王伟", "王伟"], legal_rep_id_no=[ids[0], ids[0]])["legal_rep_name"]
    assert again[0] == again[1] == seven[0]  # one person, one pseudonym, in any delivery
    no_id = std(amr, legal_rep_name=["王伟", "王伟"], legal_rep_id_no=[None, None])["legal_rep_name"]
    assert no_id[0] != no_id[1] and not set(no_id) & set(seven)
    reporter = std(prod, reporter_name=["王伟"], reporter_mobile=["13812345678"])["reporter_name"]
    assert reporter[0] not in set(seven)

    # the audited path still finds the name behind a (qualified) pseudonym in raw
    raw = raw_lake.read("raw", "amr_registration").drop_nulls(["legal_rep_name", "legal_rep_id_no"])
    row = raw.row(0, named=True)
    from quality import text

    cleaned = pl.DataFrame({"n": [row["legal_rep_name"]], "i": [row["legal_rep_id_no"]]}).select(
        text.clean_text(pl.col("n")).alias("legal_rep_name"),
        text.code_of(text.clean_text(pl.col("i"))).alias("legal_rep_id_no"),
    )
    pseudo = std(amr, **{k: v.to_list() for k, v in cleaned.to_dict().items()})["legal_rep_name"][0]
    found = access.reidentify(
        raw_lake, access.Principal("li", "steward"), RING, AuditLog(tmp_path / "a.jsonl"),
        "amr_registration", "legal_rep_name", pseudo, "信访核查",
    )  # fmt: skip
    assert found == [cleaned["legal_rep_name"][0]]


def test_a_name_column_without_a_qualifier_is_refused_when_the_policy_loads(tmp_path):
    from lakehouse import config
    from lakehouse.config import ConfigError
    from privacy.policy import POLICY_PATH, PrivacyPolicy

    text = POLICY_PATH.read_text(encoding="utf-8").replace("  reporter_name: reporter_mobile\n", "")
    (tmp_path / "policy.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="reporter_name is a person's name"):
        config.load(tmp_path / "policy.yaml", PrivacyPolicy, "privacy policy")
