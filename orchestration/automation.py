"""How the pipeline runs itself (declarative automation): every derived dataset follows its inputs.

A collection run (started by a landing sensor when a department drops a file) updates raw; std follows
raw, the dbt models follow std and the seeds, the publish zone follows its model, governance and the
catalogue follow std — each requested by the ``automation`` sensor once its inputs were updated and none
of them is still running or failed a blocking check. Nothing downstream of a refused batch runs: a std
batch withheld by its gate fails its step, so its models keep their inputs' previous versions.
"""

from __future__ import annotations

import dagster as dg


def follows_inputs() -> dg.AutomationCondition:
    """Materialise after any input is updated, once no input is missing, in progress, or failing a
    blocking check (``eager``, gated on the inputs' checks)."""
    return dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
