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

import functools

import dagster as dg

from orchestration import keys


@functools.cache
def _time_partitioned() -> dg.AssetSelection:
    """raw and std of the datasets partitioned by period (``orchestration.partitions``)."""
    from lakehouse.registry import registry
    from orchestration.partitions import for_dataset

    found = [ds.id for ds in registry().datasets if for_dataset(ds) is not None]
    return dg.AssetSelection.assets(*(keys.key(zone, d) for d in found for zone in ("raw", "std")))


@functools.cache
def _all_or_nothing() -> dg.AssetSelection:
    """The outputs of entity resolution: one step writes them all (every match depends on every name std
    knows), each only when its content changed. That one of them will be run is no reason to run what reads
    another: a reader follows the version it reports."""
    from lakehouse.tables import ENTITY_MATCHES, RESOLVED

    return dg.AssetSelection.assets(*(keys.key(*t.path) for t in (ENTITY_MATCHES, *RESOLVED)))


@functools.cache
def _steward_written() -> dg.AssetSelection:
    """The tables only stewards write, outside any run (the 亩均 objections, the entity-match decisions): a
    table nobody has written yet is empty — the readers create it so — never a missing input."""
    from lakehouse.tables import OWN_TABLES

    return dg.AssetSelection.assets(*(keys.key(*t.path) for t in OWN_TABLES if t.written_by == ("steward",)))


@functools.cache
def _context_only() -> dg.AssetSelection:
    """Inputs read for context, which start nothing by changing: the 归集 status (the 亩均 completeness reads
    which months were delivered late or not at all). A delivery that lands changes std as well, which starts
    the readers; what changes the status alone — a deadline passing, a file refused — moves a month between
    not yet due, missing and refused, all of them undelivered to its readers."""
    from lakehouse.tables import COLLECTION_STATUS

    return dg.AssetSelection.assets(keys.key(*COLLECTION_STATUS.path))


def follows_inputs(partitioned: bool = False, context: bool = False) -> dg.AutomationCondition:
    """Materialise after an input changed, once no input is missing, in progress, or failing a blocking
    check — Dagster's ``eager`` with "changed" meaning a new data version: raw, std and publish report their
    Delta version, so a collection that landed nothing (a file sent twice), a std build with nothing new or
    a publication with the same content start nothing downstream. Assets that report no data version get a
    new one with every materialisation, so they count as changed whenever they run.

    ``partitioned`` (std of a periodic dataset): per period, in any period — not only the latest, as
    ``eager`` does: a correction of an old month rebuilds that month. For an unpartitioned asset, an input
    partitioned by period counts as missing only when none of its periods exists (periods nobody delivered,
    next year's months, are not missing inputs), and a table only stewards write never does (until the first
    decision it is empty). An input written by entity resolution counts only once its version changed
    (``_all_or_nothing``). ``context`` (the dbt models): an input read for context (``_context_only``)
    starts nothing — the 归集 monitoring's own assets do follow the status."""
    changed = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.data_version_changed() | dg.AutomationCondition.will_be_requested()
    ).ignore(
        _all_or_nothing() | (_context_only() if context else dg.AssetSelection.assets())
    ) | dg.AutomationCondition.any_deps_match(dg.AutomationCondition.data_version_changed()).allow(_all_or_nothing())
    if partitioned:
        where = ~dg.AutomationCondition.any_deps_missing()  # every period whose inputs exist
    else:
        where = dg.AutomationCondition.in_latest_time_window()  # an unpartitioned asset: always
        optional = (
            _time_partitioned() | _steward_written() | (_context_only() if context else dg.AssetSelection.assets())
        )
        where = where & ~dg.AutomationCondition.any_deps_missing().ignore(optional)
    return (
        where
        & (dg.AutomationCondition.newly_missing() | changed).since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    )


GATED_PREFIX = "topic_mujun_"  # dbt models evaluated only on a complete year
COMPLETENESS = dg.AssetKey(["ops", "annual_completeness"])


def year_complete() -> dg.AutomationCondition:
    """True while every check of ``ops/annual_completeness`` (each gated topic's year complete) passes."""
    return dg.AutomationCondition.asset_matches(
        COMPLETENESS, dg.AutomationCondition.all_checks_match(dg.AutomationCondition.check_passed())
    )
