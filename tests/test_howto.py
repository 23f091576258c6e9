"""docs/howto.md, performed: each recipe is carried out on a copy of the project — editing exactly the files
the recipe names — and the copy then behaves as the recipe promises. (Adding a thematic library in dbt is
performed by tests/test_modelling.py::test_a_modelers_new_model_appears_as_asset_in_catalogue_lineage_and_publish_zone.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOWTO = ROOT / "docs" / "howto.md"
USCC = "91331003MA2AAAAA7K"  # a valid code (GB 32100 check character)


def project_copy(dest: Path) -> Path:
    """The project's tracked files (and the prepared dbt manifest), without data or environments."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True
    ).stdout  # the working tree as it is, new files included
    for rel in [*listed.splitlines(), "dbt_project/target/manifest.json"]:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def run_in(copy: Path, script: str) -> dict:
    """Run a Python script inside the copy (its packages, not the checkout's) and return its JSON answer."""
    path = copy / "_recipe_check.py"
    path.write_text(textwrap.dedent(script).replace("RAW_ROWS", RAW_ROWS), encoding="utf-8")
    env = {**os.environ, "SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(copy / "data"), "PYTHONPATH": str(copy)}
    env.pop("SHUCANG_DBT_PROJECT_DIR", None)
    done = subprocess.run([sys.executable, str(path)], cwd=copy, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


RAW_ROWS = """
import datetime as _dt
import pyarrow as _pa
from lakehouse.provenance import raw_table_schema

def raw_rows(ds, values):
    \"\"\"Delivered rows as the raw table holds them: text values and provenance.\"\"\"
    n = len(next(iter(values.values())))
    data = {f.name: values.get(f.name, [None] * n) for f in raw_table_schema(ds)}
    data.update(_source_department=[ds.department] * n, _source_file=["delivery.csv"] * n,
                _file_sha256=["0" * 64] * n, _row_number=list(range(1, n + 1)), _batch_id=["b1"] * n,
                _ingested_at=[_dt.datetime(2024, 3, 1, tzinfo=_dt.UTC)] * n, _period=[None] * n)
    return pl.from_arrow(_pa.Table.from_pydict(data, schema=raw_table_schema(ds)))
"""


def conform_tax_rows(copy: Path, rule_id: str, **values: list[str]) -> dict:
    """Two tax filings (the given column values over valid defaults) conformed by the copy's std code; what
    rule ``rule_id`` found, and the totals."""
    defaults = dict(
        uscc=[USCC, USCC],
        period=["2024-01", "2024-02"],
        filing_type=["正常", "正常"],
        amount_unit=["元", "元"],
        revenue=["1", "1"],
        tax_paid=["1", "1"],
    )
    script = f"""
        import json
        import polars as pl
        from lakehouse.registry import registry
        from quality.conform import conform
        from quality.rulebook import rules_for
        RAW_ROWS

        ds = registry().dataset("tax_monthly")
        raw = raw_rows(ds, {json.dumps({**defaults, **values}, ensure_ascii=False)})
        out = conform(ds, rules_for(ds.id), raw, {{"amr_registration.uscc": pl.Series(["{USCC}"])}}, whole=True)
        hit = out.findings.filter(pl.col("rule_id") == "{rule_id}")
        print(json.dumps({{"rows": hit["row_number"].to_list(), "action": hit["action"].to_list(),
                          "rows_out": out.rows_out, "quarantined": out.quarantined}}))
        """
    return run_in(copy, script)


def edit(copy: Path, rel: str, old: str, new: str) -> None:
    path = copy / rel
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{rel}: {old!r} not found"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def recipe_files(title: str) -> set[str]:
    """The files a recipe of docs/howto.md says it touches (its 'Files:' line)."""
    text = HOWTO.read_text(encoding="utf-8")
    section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    line = next(ln for ln in section.splitlines() if ln.startswith("Files:"))
    return set(re.findall(r"`([^`]+)`", line))


def touched(copy: Path) -> set[str]:
    """Files of the copy that differ from the checkout, or are new."""
    changed = set()
    for path in copy.rglob("*"):
        rel = path.relative_to(copy).as_posix()
        if not path.is_file() or rel.startswith(("data/", "_recipe_check")) or "__pycache__" in rel:
            continue
        if rel.startswith("dbt_project/target/"):
            continue
        original = ROOT / rel
        if not original.is_file() or original.read_bytes() != path.read_bytes():
            changed.add(rel)
    return changed


def _matches(files: set[str], declared: set[str]) -> bool:
    """Every touched file is one the recipe names (``<dataset>`` stands for a name)."""
    patterns = [re.compile("^" + re.escape(d).replace(re.escape("<dataset>"), r"[a-z_]+") + "$") for d in declared]
    return all(any(p.match(f) for p in patterns) for f in files)


PERMITS_SOURCE = """
  - id: eco_permits
    department: eco
    name_zh: 排污许可证
    name_en: Pollutant discharge permits
    description: 企业排污许可证（生态环境）。Discharge permits held by enterprises.
    format: csv
    landing: eco/permits
    pattern: "*.csv"
    update_cycle: 每月
    share_type: 有条件共享
    open_type: 不予开放
    columns:
      - {name: permit_no, source: 许可证编号, type: code, description: 排污许可证编号, classification: organisation.environment, grade: L1, role: none}
      - {name: uscc, source: 统一社会信用代码, type: code, description: 持证单位统一社会信用代码, classification: organisation.identity, grade: L1, role: none}
      - {name: issued_on, source: 发证日期, type: date, description: 发证日期, classification: time, grade: L1, role: none}
"""
PERMITS_RULES = """dataset: eco_permits
key: [permit_no]
rules:
  - {id: permit_required, dimension: completeness, check: required, column: permit_no, severity: ERROR, zh: 许可证编号缺失, en: permit number missing}
  - {id: uscc_valid, dimension: validity, check: uscc, column: uscc, severity: ERROR, zh: 统一社会信用代码不符合GB 32100, en: USCC fails GB 32100}
  - {id: issued_on_valid, dimension: validity, check: parsed, column: issued_on, severity: ERROR, zh: 发证日期无法识别, en: issue date unreadable}
batch:
  - {id: key_unique, dimension: uniqueness, check: unique, columns: [permit_no], severity: ERROR, zh: 许可证编号重复, en: duplicate permit number}
  - {id: quarantine_share, dimension: completeness, check: max_quarantine_share, max: 0.5, severity: ERROR, zh: 问题数据占比过高, en: too large a share of rows quarantined}
"""


@pytest.mark.integration  # loads the copy's Dagster definitions in a subprocess
def test_add_a_source(tmp_path):
    copy = project_copy(tmp_path / "project")
    text = (copy / "lakehouse" / "sources.yaml").read_text(encoding="utf-8")
    (copy / "lakehouse" / "sources.yaml").write_text(text.rstrip("\n") + "\n" + PERMITS_SOURCE, encoding="utf-8")
    (copy / "quality" / "rules" / "eco_permits.yaml").write_text(PERMITS_RULES, encoding="utf-8")
    assert _matches(touched(copy), recipe_files("Add a source"))
    landing = copy / "data" / "landing" / "eco" / "permits"
    landing.mkdir(parents=True)
    (landing / "permits-2024-01.csv").write_text(
        f"许可证编号,统一社会信用代码,发证日期\n{USCC}001P,{USCC},2023-05-01\n,{USCC},2023-06-01\n",
        encoding="utf-8",
    )
    answer = run_in(
        copy,
        """
        import json
        import dagster as dg
        from assets.ingest.collector import Collector
        from lakehouse.registry import registry
        from orchestration.definitions import defs
        from orchestration.settings import settings
        from quality.rulebook import rules_for
        from quality.standardise import standardise

        s = settings()
        ds = registry().dataset("eco_permits")
        Collector(ds, s.lake(), s.landing_root, s.rejected_root, "b1").run()
        out = standardise(s.lake(), ds, rules_for(ds.id))
        keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
        sensors = [x.name for x in defs.sensors]
        print(json.dumps({
            "raw": s.lake().row_count("raw", ds.id), "std": out.result.rows_out,
            "quarantined": out.result.quarantined,
            "assets": sorted(k for k in keys if "eco_permits" in k),
            "sensor": any("eco_permits" in n for n in sensors),
        }))
        """,
    )
    assert (answer["raw"], answer["std"], answer["quarantined"]) == (2, 1, 1)
    assert answer["assets"] == ["landing/landing_eco_permits", "raw/raw_eco_permits", "std/eco_permits"]
    assert answer["sensor"]


def test_add_a_rule_of_an_existing_kind(tmp_path):
    copy = project_copy(tmp_path / "project")
    rule = (
        "  - {id: tax_paid_plausible, dimension: accuracy, check: range, column: tax_paid, max: 100000000, "
        "severity: WARN, zh: 实缴税额超过1亿元，请核实, en: tax paid above 100 million yuan}\n"
    )
    edit(copy, "quality/rules/tax_monthly.yaml", "batch:\n", rule + "batch:\n")
    assert _matches(touched(copy), recipe_files("Add a rule of an existing kind"))
    answer = conform_tax_rows(copy, "tax_paid_plausible", revenue=["1000", "1000"], tax_paid=["200000000", "100"])
    assert (answer["rows"], answer["action"], answer["rows_out"]) == ([1], ["flagged"], 2)  # WARN: flagged, kept


def test_add_a_new_check_kind(tmp_path):
    copy = project_copy(tmp_path / "project")
    edit(copy, "quality/rulebook.py", '    "no_private_use",\n]', '    "no_private_use",\n    "max_length",\n]')
    edit(
        copy,
        "quality/rulebook.py",
        '            "unit_known": ["measure"],',
        '            "unit_known": ["measure"],\n            "max_length": ["max"],',
    )
    edit(
        copy,
        "quality/conform.py",
        '        case "not_after_ingest":',
        '        case "max_length":\n            return present & (std.cast(pl.String).str.len_chars() > rule.max)\n        case "not_after_ingest":',
    )
    rule = (
        "  - {id: name_length, dimension: validity, check: max_length, column: taxpayer_name, max: 10, "
        "severity: ERROR, zh: 纳税人名称过长, en: taxpayer name too long}\n"
    )
    edit(copy, "quality/rules/tax_monthly.yaml", "batch:\n", rule + "batch:\n")
    assert _matches(touched(copy), recipe_files("Add a new check kind"))
    answer = conform_tax_rows(copy, "name_length", taxpayer_name=["短名", "一个名字非常非常长的塑料制品有限公司"])
    assert (answer["rows"], answer["quarantined"]) == ([2], 1)


def test_change_what_std_does_to_a_columns_identifiers(tmp_path):
    """A land parcel's holder turns out to be a natural person (个体户): its name becomes a direct
    identifier, pseudonymised in std in the person_name domain — qualified by its row, as no identifier of
    the holder is delivered, so it never shares a pseudonym with a namesake elsewhere."""
    copy = project_copy(tmp_path / "project")
    edit(
        copy,
        "lakehouse/sources.yaml",
        "description: 权利人, classification: organisation.identity, grade: L1, role: none}",
        "description: 权利人（个体户为自然人姓名）, classification: personal.identity, grade: L3, role: direct}",
    )
    edit(
        copy,
        "privacy/policy.yaml",
        "  reporter_name: person_name\n",
        "  reporter_name: person_name\n  holder_name: person_name\n",
    )
    edit(
        copy,
        "privacy/policy.yaml",
        "  reporter_name: reporter_mobile\n",
        "  reporter_name: reporter_mobile\n  holder_name: row\n",
    )
    assert _matches(touched(copy), recipe_files("Change what std does to a column's identifiers"))
    answer = run_in(
        copy,
        """
        import json
        import polars as pl
        from assets.catalogue_entries import column_entries
        from lakehouse.registry import registry
        import os
        from pathlib import Path
        from privacy import keys, policy
        from privacy.audit import AuditLog

        reg = registry()
        land, reg_ds = reg.dataset("land_parcels"), reg.dataset("amr_registration")
        ring = keys.load(AuditLog(Path("audit.jsonl")), Path(os.environ["SHUCANG_KEY_FILE"]))
        def pseudonym(ds, column, value):
            frame = pl.DataFrame({c: [value if c == column else None] for c in policy.std_transforms(ds)},
                                 schema={c: pl.String for c in policy.std_transforms(ds)})
            frame = frame.with_columns(pl.lit("f").alias("_file_sha256"), pl.lit(1).alias("_row_number"))
            return policy.apply_std(frame, ds, ring)[column][0]

        mine, theirs = pseudonym(land, "holder_name", "王小明"), pseudonym(reg_ds, "legal_rep_name", "王小明")
        entry = next(c for c in column_entries(reg, land, "std") if c["column"] == "holder_name")
        print(json.dumps({"transform": policy.std_transforms(land)["holder_name"], "same_pseudonym": mine == theirs,
                          "pseudonym": mine.startswith("k"), "catalogue": [entry["privacy_transform"],
                          entry["effective_grade"]]}))
        """,
    )
    assert answer == {
        "transform": "pseudonymise",
        "same_pseudonym": False,
        "pseudonym": True,
        "catalogue": ["pseudonymise", "L2"],
    }


def test_add_a_consumer_policy(tmp_path):
    """A new kind of consumer (research institutes) gets L1 as is, L2 generalised, nothing above."""
    copy = project_copy(tmp_path / "project")
    edit(
        copy,
        "exchange/policy.yaml",
        "consumer_policies:\n",
        "consumer_policies:\n  research:         # research institutes\n    L1: keep\n    L2: generalise\n    L3: suppress\n",
    )
    assert _matches(touched(copy), recipe_files("Add a consumer policy"))
    answer = run_in(
        copy,
        """
        import json
        import datetime as dt
        import polars as pl
        import pathlib, tempfile
        from exchange.identity import Principals
        from exchange.requests import Consumer, parse
        from exchange.shares import apply_policy

        registry = Principals(pathlib.Path(tempfile.mkdtemp()) / "principals.json")
        zju, _ = registry.add_consumer("zju-research", "浙江大学", "研究院", "research")
        today = dt.date.today()
        request = parse({"datasets": [{"dataset": "topic_mujun_evaluation", "columns": ["uscc", "total_score"]}],
                         "purpose": "研究", "legal_basis": "合作协议",
                         "period": {"start": today.isoformat(), "end": (today + dt.timedelta(days=30)).isoformat()}},
                        "study", Consumer(zju.id, zju.name, zju.department, zju.kind))
        frame = pl.DataFrame({"uscc": ["a"], "total_score": [87.654], "secret": [1.0]})
        meta = {"uscc": {"grade": "L1"}, "total_score": {"grade": "L2", "role": "sensitive"}, "secret": {"grade": "L3"}}
        out, applied = apply_policy(frame, meta, "research")
        print(json.dumps({"kind": request.consumer.kind, "row": out.row(0), "applied": applied}))
        """,
    )
    assert answer["kind"] == "research"
    assert answer["row"] == ["a", 88.0, None]
    assert answer["applied"] == {"total_score": "generalised", "secret": "suppressed"}


def test_every_recipe_of_the_howto_is_performed_here_or_named():
    titles = re.findall(r"(?m)^## (.+)$", HOWTO.read_text(encoding="utf-8"))
    performed = {
        "Add a source",
        "Add a rule of an existing kind",
        "Add a new check kind",
        "Add a thematic library in dbt",
        "Change what std does to a column's identifiers",
        "Add a consumer policy",
    }
    assert set(titles) >= performed
    for title in performed:
        assert recipe_files(title), title
