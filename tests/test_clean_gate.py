"""Write-audit-publish in Dagster: a batch that fails an ERROR rule is not committed; downstream does not run."""

import dagster as dg
import polars as pl
import pytest

import assets.defs
import quality.standardise
from lakehouse.lake import Lake
from lakehouse.registry import registry
from orchestration import runs
from orchestration.resources import resources
from orchestration.settings import settings

pytestmark = pytest.mark.integration  # Dagster runs, dbt, servers: make test, not make test-fast

REG = registry().dataset("amr_registration")


def _select(*keys):
    wanted = {tuple(k) for k in keys}
    return [
        a
        for a in assets.defs.defs.assets
        if isinstance(a, dg.AssetsDefinition) and any(tuple(k.path) in wanted for k in a.keys)
    ]


@pytest.mark.parametrize("part_rows", [None, 300], ids=["one-batch", "streamed-in-buckets"])
def test_a_failing_error_rule_keeps_std_at_its_previous_version_and_stops_downstream(workdir, part_rows, monkeypatch):
    """With buckets, the first ones pass and stream into the commit; the share rule fails only on the
    total, and the commit must still leave nothing behind."""
    if part_rows:
        monkeypatch.setattr(quality.standardise, "PART_ROWS", part_rows)
    s = settings({"SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(workdir)})
    instance = dg.DagsterInstance.ephemeral()
    graph = [
        ("raw", "raw_amr_registration"),
        ("std", "amr_registration"),
        ("raw", "raw_tax_monthly"),
        ("std", "tax_monthly"),
    ]
    first = runs.materialize(_select(*graph), resources=resources(s), instance=instance)
    assert first.success
    lake = Lake(s.lake_root)
    version, rows = lake.table("std", "amr_registration").version(), lake.row_count("std", "amr_registration")

    # a new delivery in which hundreds of rows lack the USCC: more than the 20% the batch rule allows
    header = ",".join(REG.source_headers)
    good = lake.read("raw", "amr_registration").row(0, named=True)

    def row(i: int) -> str:
        values = {c.name: (good[c.name] or "").replace(",", " ") for c in REG.columns}
        values.update(uscc="", name=f"{values['name']}{i}")  # distinct records, none with a USCC
        return ",".join(values[c.name] for c in REG.columns)

    (workdir / "landing" / REG.landing / "市场监管_企业登记信息_补报.csv").write_bytes(
        ("\n".join([header, *(row(i) for i in range(400))]) + "\n").encode("gb18030")
    )

    second = runs.materialize(
        _select(*graph[:2], graph[3]), resources=resources(s), instance=instance, raise_on_error=False
    )
    assert not second.success
    checks = {(c.asset_key.path[-1], c.check_name): c for c in second.get_asset_check_evaluations()}
    gate = checks[("amr_registration", "quarantine_share")]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert checks[("amr_registration", "uscc_required")].metadata["failures"].value == 400
    materialized = {tuple(m.asset_key.path) for m in second.get_asset_materialization_events()}
    assert ("std", "amr_registration") not in materialized and ("std", "tax_monthly") not in materialized
    assert ("raw", "raw_amr_registration") in materialized  # the delivery itself landed in raw, as received
    assert lake.table("std", "amr_registration").version() == version  # nothing of the batch is visible
    assert lake.row_count("std", "amr_registration") == rows
    assert lake.read("quarantine", "findings").filter(pl.col("dataset") == "amr_registration").height < 400
