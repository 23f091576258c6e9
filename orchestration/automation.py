"""How the pipeline runs itself (declarative automation): every derived dataset follows its inputs.

A collection run (started by a landing sensor when a department drops a file) updates raw; std follows
raw, the dbt models follow std and the seeds, the publish zone follows its model, governance and the
catalogue follow std — each requested by the ``automation`` sensor once its inputs were updated and none
of them is still running or failed a blocking check. Nothing downstream of a refused batch runs: a std
batch withheld by its gate fails its step, so its models keep their inputs' previous versions.

The 亩均 evaluation is annual: its models (``topic_mujun_*``) also wait until every delivery their inputs
owe for the year has arrived — the check ``mujun_inputs_complete`` on ``ops/annual_completeness`` — so a
year is not evaluated, and firms not graded, on eleven months of electricity.
"""

from __future__ import annotations

import dagster as dg


def follows_inputs() -> dg.AutomationCondition:
    """Materialise after any input is updated, once no input is missing, in progress, or failing a
    blocking check (``eager``, gated on the inputs' checks)."""
    return dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


GATED_PREFIX = "topic_mujun_"  # dbt models evaluated only on a complete year
COMPLETENESS = dg.AssetKey(["ops", "annual_completeness"])


def year_complete() -> dg.AutomationCondition:
    """True while every check of ``ops/annual_completeness`` (each gated topic's year complete) passes."""
    return dg.AutomationCondition.asset_matches(
        COMPLETENESS, dg.AutomationCondition.all_checks_match(dg.AutomationCondition.check_passed())
    )
