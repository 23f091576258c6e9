"""The dbt macro that limits an incremental model to the periods its std inputs changed, rendered with
plain Jinja as dbt renders it (``var`` supplied as the Dagster asset sets it)."""

import json

import jinja2
import pytest

from orchestration.settings import PROJECT_ROOT

MACRO = (PROJECT_ROOT / "dbt_project" / "macros" / "changed_periods.sql").read_text(encoding="utf-8")


def _render(changed, sources, granularity="month", offsets=(0,), environ=None) -> str:
    env = jinja2.Environment(extensions=["jinja2.ext.do"])
    given = {
        "var": lambda name, default=None: changed,
        "env_var": lambda name, default=None: (environ or {}).get(name, default),
        "fromjson": json.loads,
    }
    module = env.from_string(MACRO, globals=given).module
    return str(module.changed_periods("period", sources, granularity, list(offsets))).strip()


@pytest.mark.parametrize(
    ("changed", "sources", "granularity", "expected"),
    [
        (None, ["tax_monthly"], "month", "true"),  # outside Dagster: every period
        ({"tax_monthly": "all"}, ["tax_monthly"], "month", "true"),
        ({"tax_monthly": []}, ["tax_monthly"], "month", "false"),  # nothing changed
        ({"tax_monthly": ["2023-03"]}, ["tax_monthly", "power_monthly"], "month", "true"),  # power not listed
        (
            {"tax_monthly": ["2023-11", "2023-03"], "power_monthly": ["2023-03"]},
            ["tax_monthly", "power_monthly"],
            "month",
            "period in ('2023-03', '2023-11')",
        ),
        ({"tax_monthly": ["2023-03", "2024-01"]}, ["tax_monthly"], "year", "period in ('2023', '2024')"),
        ({"ent_telemetry": ["2023-12-01"]}, ["ent_telemetry"], "month", "period in ('2023-12')"),
    ],
)
def test_changed_periods_condition(changed, sources, granularity, expected):
    assert _render(changed, sources, granularity) == expected


def test_a_month_on_month_model_also_rebuilds_the_month_after():
    changed = {"tax_monthly": ["2023-03", "2023-12"]}
    assert _render(changed, ["tax_monthly"], offsets=(0, 1)) == "period in ('2023-03', '2023-04', '2023-12', '2024-01')"
    assert _render({"tax_monthly": []}, ["tax_monthly"], offsets=(0, 1)) == "false"


def test_an_incremental_models_definition_covers_its_sql_the_project_vars_and_the_macros(tmp_path):
    from orchestration.dbt.assets import definitions
    from orchestration.dbt.project import Translator

    (tmp_path / "macros").mkdir()
    (tmp_path / "dbt_project.yml").write_text("vars: {electricity_drop_threshold: 0.30}\n")
    (tmp_path / "macros" / "m.sql").write_text("{% macro m() %}1{% endmacro %}")
    node = {
        "resource_type": "model",
        "name": "topic_x",
        "fqn": ["shucang", "topic", "topic_x"],
        "original_file_path": "models/topic/topic_x.sql",
        "config": {"materialized": "incremental"},
        "checksum": {"name": "sha256", "checksum": "abc"},
    }
    table = {**node, "name": "topic_y", "config": {"materialized": "table"}}
    manifest = {"nodes": {"model.shucang.topic_x": node, "model.shucang.topic_y": table}}
    first = definitions(manifest, Translator(), tmp_path)
    assert len(first) == 1  # tables are rebuilt whole anyway
    (tmp_path / "dbt_project.yml").write_text("vars: {electricity_drop_threshold: 0.25}\n")
    second = definitions(manifest, Translator(), tmp_path)
    assert second != first  # a threshold changed: rebuild every month
    node["checksum"] = {"name": "sha256", "checksum": "def"}  # the model's SQL changed
    assert definitions(manifest, Translator(), tmp_path) != second


def test_the_changed_periods_come_from_the_environment_before_a_var():
    """The Dagster asset sets SHUCANG_CHANGED (a var would make dbt re-parse the project on every run)."""
    environ = {"SHUCANG_CHANGED": json.dumps({"tax_monthly": ["2023-05"]})}
    assert _render({"tax_monthly": "all"}, ["tax_monthly"], environ=environ) == "period in ('2023-05')"
    assert _render({"tax_monthly": ["2023-01"]}, ["tax_monthly"], environ={}) == "period in ('2023-01')"
