"""The dbt macro that limits an incremental model to the periods its std inputs changed, rendered with
plain Jinja as dbt renders it (``var`` supplied as the Dagster asset sets it)."""

import jinja2
import pytest

from orchestration.settings import PROJECT_ROOT

MACRO = (PROJECT_ROOT / "dbt_project" / "macros" / "changed_periods.sql").read_text(encoding="utf-8")


def _render(changed, sources, granularity="month") -> str:
    env = jinja2.Environment(extensions=["jinja2.ext.do"])
    module = env.from_string(MACRO, globals={"var": lambda name, default=None: changed}).module
    return str(module.changed_periods("period", sources, granularity)).strip()


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
