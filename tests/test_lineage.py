"""OpenLineage from every materialisation: valid events, column lineage across stages, impact queries."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from conftest import is_published
from openlineage_schema import EventValidator

import assets.defs
from lakehouse.lake import Lake
from lakehouse.tables import (
    CHANGES,
    COLLECT_LOG,
    DEAD_LETTERS,
    DUPLICATES,
    ENTITY_DECISIONS,
    FINDINGS,
    GRADE_OVERRIDES,
    MODEL_SCHEMAS,
    OBJECTIONS,
    OWN_TABLES,
    SCORES,
    STD_PARTITIONS,
)
from orchestration import keys, runs
from orchestration.definitions import defs
from orchestration.lineage import declare
from orchestration.lineage.emit import RUN_TAG, emit_run, naming
from orchestration.lineage.impact import LineageGraph
from orchestration.lineage.transport import LakeFileTransport
from orchestration.resources import resources
from orchestration.settings import settings

pytestmark = pytest.mark.integration  # Dagster runs, dbt, servers: make test, not make test-fast

RAW_REG = dg.AssetKey(["raw", "raw_amr_registration"])
LANDING_REG = dg.AssetKey(["landing", "landing_amr_registration"])


def _collection_assets():
    return [a for a in assets.defs.defs.assets if isinstance(a, dg.AssetsDefinition) and not is_published(a)]


def _materialize(workdir, selection, graph=None):
    s = settings({"SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(workdir)})
    instance = dg.DagsterInstance.ephemeral()
    result = runs.materialize(selection, None, instance, resources=resources(s), raise_on_error=False)
    graph = graph or defs.resolve_asset_graph()
    # one report per run: the collection runs of each period's partitions, std, … (orchestration.runs)
    reports = [emit_run(instance, run_id, graph, s) for run_id in result.run_ids]
    events = [json.loads(line) for report in reports for line in open(report.file, encoding="utf-8")]
    return s, instance, result, reports, events


@pytest.fixture(scope="module")
def full_run(module_workdir):
    """One full run of the Python stages and its events; the tests only read them."""
    return _materialize(module_workdir, _collection_assets())


def test_every_event_of_a_full_run_validates_against_the_spec(full_run):
    _, _, result, _, events = full_run
    validator = EventValidator()
    assert events and all(validator.errors(e) == [] for e in events), [validator.errors(e) for e in events][:3]
    by_job: dict[str, list[str]] = {}
    for e in events:
        by_job.setdefault(e["job"]["name"], []).append(e["eventType"])
    assert by_job.pop("__ASSET_JOB") == ["START", "COMPLETE"] * len(result.run_ids)  # each run
    assert len(result.run_ids) > 1  # raw of each partitioning, then std
    assert set(by_job) == {".".join(keys.table(k)) for a in _collection_assets() for k in a.keys}
    # START then COMPLETE per run of the asset (std of a month with a gap builds in one run per range)
    assert all(states and states == ["START", "COMPLETE"] * (len(states) // 2) for states in by_job.values())
    asset_events = [e for e in events if e["job"]["name"] != "__ASSET_JOB"]
    assert {e["run"]["facets"]["parent"]["run"]["runId"] for e in asset_events} == set(result.run_ids)
    # one run id per asset and run, the same on its START and COMPLETE
    assert len({e["run"]["runId"] for e in asset_events}) == len(asset_events) // 2


def test_outputs_carry_version_schema_quality_and_catalogue_facets(full_run):
    s, instance, _, _, events = full_run
    done = next(e for e in events if e["job"]["name"] == "raw.tax_monthly" and e["eventType"] == "COMPLETE")
    out = done["outputs"][0]
    # one namespace per storage location (the lake root), names by zone and dataset
    assert (out["namespace"], out["name"]) == (Path(s.lake_root).resolve().as_uri(), "raw/tax_monthly")
    facets = out["facets"]
    assert facets["version"]["datasetVersion"] == str(Lake(s.lake_root).table("raw", "tax_monthly").version())
    assert "企业月度纳税申报" in facets["documentation"]["description"]
    assert {o["name"] for o in facets["ownership"]["owners"]} == {"team:黄岩区税务局", "team:data-stewards"}
    assertions = {a["name"]: a for a in facets["dataQualityAssertions"]["assertions"]}
    assert assertions["rows_reconcile"]["success"] is True
    assert assertions["files_accepted"]["success"] is False and assertions["files_accepted"]["severity"] == "error"
    assert facets["dataQualityMetrics"]["rowCount"] == Lake(s.lake_root).row_count("raw", "tax_monthly")
    assert out["outputFacets"]["outputStatistics"]["rowCount"] > 0
    inp = done["inputs"][0]
    assert inp["name"] == "tax/monthly" and "纳税人识别号" in {f["name"] for f in inp["facets"]["schema"]["fields"]}


def test_column_lineage_is_declared_not_invented(full_run):
    _, _, result, _, events = full_run
    done = next(e for e in events if e["job"]["name"] == "raw.amr_registration" and e["eventType"] == "COMPLETE")
    fields = done["outputs"][0]["facets"]["columnLineage"]["fields"]
    src = fields["legal_rep_id_no"]["inputFields"][0]
    assert (src["name"], src["field"]) == ("amr/registration", "法定代表人证件号码")
    assert src["transformations"][0]["subtype"] == "IDENTITY"
    unknown = done["outputs"][0]["facets"]["shucang_columnLineageCoverage"]["unknownOrigin"]
    assert "_row_number" in unknown and "legal_rep_id_no" not in unknown
    # the same mapping is what the UI shows
    mat = next(m for m in result.get_asset_materialization_events() if m.asset_key == RAW_REG)
    ui = mat.materialization.metadata["dagster/column_lineage"].value.deps_by_column["legal_rep_id_no"]
    assert [(d.asset_key, d.column_name) for d in ui] == [(LANDING_REG, "法定代表人证件号码")]


def test_a_column_is_traced_through_the_real_stages(full_run):
    s, *_ = full_run
    n = naming(s)
    g = LineageGraph.from_events(LakeFileTransport(s.lake()).read_all())
    std = n.dataset(["std", "amr_registration"])
    chain = [(n.short(c[0], c[1]), c[2], how) for _, c, how in g.upstream((std.namespace, std.name, "legal_rep_id_no"))]
    assert chain == [
        ("std/amr_registration", "legal_rep_id_no", ""),
        ("raw/amr_registration", "legal_rep_id_no", "TRANSFORMATION"),
        ("landing:amr/registration", "法定代表人证件号码", "IDENTITY · source"),
    ]
    # every std column of every dataset has a declared origin
    for e in LakeFileTransport(s.lake()).read_all():
        if e["eventType"] == "COMPLETE" and e["job"]["name"].startswith("std."):
            assert "shucang_columnLineageCoverage" not in e["outputs"][0]["facets"], e["job"]["name"]


def test_an_asset_with_no_lineage_code_still_has_table_lineage(full_run):
    _, _, _, _, events = full_run
    done = next(e for e in events if e["job"]["name"] == "catalogue.datasets" and e["eventType"] == "COMPLETE")
    published = {
        "/".join(keys.table(k))
        for a in assets.defs.defs.assets
        if isinstance(a, dg.AssetsDefinition) and is_published(a)
        for k in a.keys
        if k.path[0] == "publish"
    }
    own = {t.label for t in OWN_TABLES if "catalogue" not in t.written_by}  # the catalogue reads what it lists
    assert published and {i["name"] for i in done["inputs"]} == published | own | {"quality/problem_lists"} | {
        "/".join(keys.table(k)) for a in _collection_assets() for k in a.keys if k.path[0] in ("raw", "std")
    }
    # the Delta version each input stood at (this run built no publish zone, changed no grade)
    # written by stewards' commands (none in this run), and problem lists are files
    unwritten = published | {
        CHANGES.label,
        GRADE_OVERRIDES.label,
        OBJECTIONS.label,
        ENTITY_DECISIONS.label,
        DEAD_LETTERS.label,  # written by stream collections only (the demo has none)
        MODEL_SCHEMAS.label,  # written by the dbt models on Sail only
        "quality/problem_lists",
    }
    assert all("version" in i["facets"] for i in done["inputs"] if i["name"] not in unwritten), [
        i["name"] for i in done["inputs"] if i["name"] not in unwritten and "version" not in i["facets"]
    ]


def test_tables_a_step_writes_besides_its_asset_are_its_outputs(full_run):
    """quarantine/findings, quality/scores … are written by the std steps: lineage says so, with the version."""
    s, _, _, _, events = full_run
    done = next(e for e in events if e["job"]["name"] == "std.tax_monthly" and e["eventType"] == "COMPLETE")
    outputs = {o["name"]: o for o in done["outputs"]}
    assert set(outputs) == {"std/tax_monthly", FINDINGS.label, DUPLICATES.label, STD_PARTITIONS.label, SCORES.label}
    lake = s.lake()
    # each write is its own commit; the last one of the run is the table's current version
    assert (
        int(outputs[SCORES.label]["facets"]["version"]["datasetVersion"]) <= lake.table("quality", "scores").version()
    )
    collected = next(e for e in events if e["job"]["name"] == "raw.tax_monthly" and e["eventType"] == "COMPLETE")
    assert {o["name"] for o in collected["outputs"]} == {"raw/tax_monthly", COLLECT_LOG.label}


def test_emitting_a_run_again_gives_the_same_events(full_run):
    s, instance, result, _, events = full_run
    again = [emit_run(instance, run_id, defs.resolve_asset_graph(), s) for run_id in result.run_ids]
    assert [json.loads(x) for report in again for x in open(report.file, encoding="utf-8")] == events
    for r in result.run_ids:  # the tag names the file in the lake, not a path on this machine
        tag = instance.get_run_by_id(r).tags[RUN_TAG]
        assert f"OpenLineage events → ops/lineage/{r}.jsonl (lake)" in tag and str(s.data_dir) not in tag


@dg.asset(
    key=["std", "enterprise"],
    deps=[RAW_REG],
    metadata={
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn("uscc"), dg.TableColumn("legal_rep_pseudonym"), dg.TableColumn("name")]
        )
    },
)
def std_enterprise():
    return dg.MaterializeResult(
        metadata={
            "dagster/column_lineage": declare.declared(
                {
                    "uscc": [(RAW_REG, "uscc")],
                    "legal_rep_pseudonym": [(RAW_REG, "legal_rep_id_no")],
                }
            ),
            "shucang/column_transformations": declare.transformations(
                {"legal_rep_pseudonym": ("DIRECT", "MASKING", "HMAC-SHA-256")}
            ),
        }
    )


@dg.asset(key=["theme", "enterprise_profile"], deps=[std_enterprise])
def theme_profile():
    cols = ["uscc", "legal_rep_pseudonym"]
    return dg.MaterializeResult(metadata={"dagster/column_lineage": declare.by_name(std_enterprise.key, cols, cols)})


def test_a_column_is_traced_through_three_stages(workdir):
    collect_reg = next(a for a in _collection_assets() if RAW_REG in a.keys)
    graph = dg.Definitions(
        assets=[*assets.defs.landing_specs, collect_reg, std_enterprise, theme_profile], resources=resources()
    ).resolve_asset_graph()
    s, _, result, _, _ = _materialize(workdir, [collect_reg, std_enterprise, theme_profile], graph)
    assert result.success
    n = naming(s)
    g = LineageGraph.from_events(LakeFileTransport(s.lake()).read_all())
    theme = n.dataset(["theme", "enterprise_profile"])
    chain = g.upstream((theme.namespace, theme.name, "legal_rep_pseudonym"))
    assert [(n.short(c[0], c[1]), c[2]) for _, c, _ in chain] == [
        ("theme/enterprise_profile", "legal_rep_pseudonym"),
        ("std/enterprise", "legal_rep_pseudonym"),
        ("raw/amr_registration", "legal_rep_id_no"),
        ("landing:amr/registration", "法定代表人证件号码"),
    ]
    assert chain[2][2] == "MASKING" and chain[-1][2].endswith("source")
    landing = n.dataset(["landing", "landing_amr_registration"])
    columns, _ = g.downstream((landing.namespace, landing.name, "法定代表人证件号码"))
    assert [(n.short(c[0], c[1]), c[2]) for c, _ in columns] == [
        ("raw/amr_registration", "legal_rep_id_no"),
        ("std/enterprise", "legal_rep_pseudonym"),
        ("theme/enterprise_profile", "legal_rep_pseudonym"),
    ]
    # std/enterprise.name is in the schema, but nobody declared where it comes from
    std = n.dataset(["std", "enterprise"])
    assert g.upstream((std.namespace, std.name, "name")) == [(0, (std.namespace, std.name, "name"), "origin unknown")]


@dg.asset(key=["std", "broken"], deps=[RAW_REG])
def broken():
    raise ValueError("standardiser crashed on row 17")


def test_a_failing_step_emits_fail_with_the_error(workdir):
    collect_reg = next(a for a in _collection_assets() if RAW_REG in a.keys)
    graph = dg.Definitions(
        assets=[*assets.defs.landing_specs, collect_reg, broken], resources=resources()
    ).resolve_asset_graph()
    _, _, result, _, events = _materialize(workdir, [collect_reg, broken], graph)
    assert not result.success
    fail = next(e for e in events if e["job"]["name"] == "std.broken" and e["eventType"] == "FAIL")
    assert "standardiser crashed on row 17" in fail["run"]["facets"]["errorMessage"]["message"]
    assert [e["eventType"] for e in events if e["job"]["name"] == "__ASSET_JOB"] == ["START", "FAIL"]
    assert all(EventValidator().errors(e) == [] for e in events)


def test_lineage_in_the_catalogue_zone_is_readable_without_dagster(full_run):
    s, _, result, _, _ = full_run
    files = sorted((s.data_dir / "lake" / "ops" / "lineage").glob("*.jsonl"))
    assert [f.stem for f in files] == sorted(result.run_ids)  # one file per run
    frame = pl.concat([pl.read_ndjson(f, infer_schema_length=None) for f in files], how="diagonal_relaxed")
    assert set(frame["eventType"]) == {"START", "COMPLETE"}


def test_the_run_status_sensor_emits_with_its_code_locations_asset_graph(workdir, monkeypatch):
    """The daemon's path: the sensor takes the asset graph from its own code location (no import of the
    definitions module), and writes the run's events under the lake."""
    from orchestration.lineage import sensors

    monkeypatch.setenv("SHUCANG_ENV", "ci")
    monkeypatch.setenv("SHUCANG_DATA_DIR", str(workdir))
    s = settings()
    instance = dg.DagsterInstance.ephemeral()
    collect_reg = next(a for a in _collection_assets() if RAW_REG in a.keys)
    result = runs.materialize([collect_reg], None, instance, resources=resources(s))
    run = instance.get_run_by_id(result.run_id)
    success = next(
        entry.dagster_event
        for entry in instance.all_logs(result.run_id)
        if entry.dagster_event and entry.dagster_event.event_type_value in ("PIPELINE_SUCCESS", "RUN_SUCCESS")
    )
    repository = dg.Definitions(
        assets=[*assets.defs.landing_specs, collect_reg], resources=resources(s)
    ).get_repository_def()
    context = dg.build_run_status_sensor_context(
        "lineage_on_success", success, instance, run, repository_def=repository
    )
    sensors._emit(context)
    events = [e for e in LakeFileTransport(s.lake()).read_all() if e["run"]["facets"].get("parent")]
    assert {e["job"]["name"] for e in events} == {"raw.amr_registration"}
    done = next(e for e in events if e["eventType"] == "COMPLETE")
    assert [i["name"] for i in done["inputs"]] == ["amr/registration"]  # the landing folder, from the graph
    assert "OpenLineage events" in instance.get_run_by_id(result.run_id).tags[RUN_TAG]
