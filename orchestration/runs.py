"""Materialising a selection that spans partitions of different periods, as runs Dagster accepts.

Dagster runs one partitions definition per run, and a partitioned asset for named partitions. A full
refresh (the demo's ``shucang_all``), a backfill or a round of automation spans unpartitioned assets and
assets partitioned by month, year and day, so it is split into runs, in dependency order — the way the
daemon splits a backfill launched from the UI:

- a run holds unpartitioned assets, or assets of one partitions definition for one contiguous range of
  partitions (one single-run backfill each: a range of months is one std build, not one run per month);
- an asset never shares a run with a partitioned asset it depends on: a partitioned collection reports the
  periods its rows fell in rather than an output for its range, so what follows it runs after it.

The periods of a partitioned asset: those asked for, else the span of the partitions its partitioned
inputs hold (std builds the months raw holds, in one build), else — a collection, which takes whatever
was delivered — the periods the names of the delivered files state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

import dagster as dg

from lakehouse.registry import registry
from orchestration import keys
from orchestration.partitions import named_range, range_tags, ranges
from sensors.landing import scan_landing

Targets = Mapping[dg.AssetKey, Collection[str] | None]  # asset → partitions (None: see the module doc)


@dataclasses.dataclass
class Runs:
    """The runs a materialisation took, in order; it stops at the first that failed."""

    results: list[dg.ExecuteInProcessResult]
    planned: int

    @property
    def success(self) -> bool:
        return len(self.results) == self.planned and all(r.success for r in self.results)

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.results]

    @property
    def run_id(self) -> str:
        """The last run (the one that built the end of the selection, or failed)."""
        return self.results[-1].run_id

    def get_asset_materialization_events(self) -> list[dg.EventLogEntry]:
        return [e for r in self.results for e in r.get_asset_materialization_events()]

    def get_asset_check_evaluations(self) -> list:
        return [e for r in self.results for e in r.get_asset_check_evaluations()]

    @property
    def all_events(self) -> list:
        return [e for r in self.results for e in r.all_events]


@dataclasses.dataclass
class _Stage:
    keys: list[dg.AssetKey]
    pdef: dg.PartitionsDefinition | None


def _reach(graph) -> dict[dg.AssetKey, int]:
    """How many assets of the whole graph depend, directly or not, on each asset."""
    below: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for k in reversed(list(graph.toposorted_asset_keys)):
        below[k] = set().union(*({c} | below.get(c, set()) for c in graph.get(k).child_keys))
    return {k: len(v) for k, v in below.items()}


def stages(graph, keys: Iterable[dg.AssetKey]) -> list[_Stage]:
    """``keys`` in runs Dagster accepts, in dependency order (see the module doc). The assets of one
    multi-asset (the dbt project) go in one run, so the dbt models build in one dbt invocation. Of the
    runs that could go next, the one holding what most of the graph waits for goes first (std before the
    privacy scan of the same delivery): a delivery reaches publication before the reports about it."""
    selected = set(keys)
    order = [k for k in graph.toposorted_asset_keys if k in selected]
    units: dict[int, list[dg.AssetKey]] = {}
    for k in order:
        units.setdefault(id(graph.get(k).assets_def), []).append(k)
    reach = _reach(graph)
    done: set[dg.AssetKey] = set()
    out: list[_Stage] = []

    def outside(unit: list[dg.AssetKey]) -> set[dg.AssetKey]:
        members = set(unit)
        return {p for k in unit for p in graph.get(k).parent_keys if p in selected and p not in members}

    while len(done) < len(order):
        ready = [u for u in units.values() if u[0] not in done and outside(u) <= done]
        if not ready:
            raise ValueError(f"cannot order {sorted(k.to_user_string() for k in set(order) - done)}")
        first = max(ready, key=lambda u: max(reach.get(k, 0) for k in u))  # ties: the first in dependency order
        pdef = graph.get(first[0]).partitions_def
        stage: list[dg.AssetKey] = list(first)
        for unit in units.values():
            if unit[0] in done or unit is first:
                continue
            ups = outside(unit)
            if any(p not in done and p not in stage for p in ups):
                continue
            if any(p in stage and graph.get(p).partitions_def is not None for p in ups):
                continue
            if graph.get(unit[0]).partitions_def != pdef:
                continue
            stage.extend(unit)
        out.append(_Stage(stage, pdef))
        done |= set(stage)
    return out


def _ranges(
    graph, instance, key: dg.AssetKey, asked: Collection[str] | None, landing=None
) -> list[dg.PartitionKeyRange]:
    """The runs of a partitioned asset: the partitions asked for, each contiguous run of them one run; by
    default one run from the first to the last partition its partitioned inputs hold (std builds what raw
    holds, in one build — a month nobody delivered inside the span is built empty), and for a collection
    (which takes whatever was delivered) the periods the names of the files in its landing folder state,
    as its landing sensor names them."""
    node = graph.get(key)
    pdef = node.partitions_def
    if not isinstance(pdef, dg.TimeWindowPartitionsDefinition):  # e.g. the shares, one per data request
        if asked is None:
            asked = (
                instance.get_dynamic_partitions(pdef.name) if isinstance(pdef, dg.DynamicPartitionsDefinition) else []
            )
        return [dg.PartitionKeyRange(k, k) for k in sorted(asked)]
    if asked is not None:
        return ranges(pdef, asked)
    inputs = [p for p in node.parent_keys if graph.get(p).partitions_def == pdef]
    if inputs:
        held = sorted(set().union(*(instance.get_materialized_partitions(p) for p in inputs)))
        return [dg.PartitionKeyRange(held[0], held[-1])] if held else []
    if landing is not None and key.path[0] == "raw":  # a collection: what the landing sensor would name
        ds = registry().dataset(keys.table(key)[1])
        return [named_range(pdef, ds, scan_landing(ds, landing))]
    every = list(pdef.get_partition_keys())
    return [dg.PartitionKeyRange(every[-1], every[-1])]


def _location() -> dg.Definitions:
    from orchestration.definitions import defs

    return defs


def execute(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    *,
    run_config: Mapping | None = None,
    tags: Mapping[str, str] | None = None,
    partition_key: str | None = None,
    asset_selection: Iterable[dg.AssetKey] | None = None,
    raise_on_error: bool = True,
):
    """One run of a job of the code location, in this process — or, when its executor sends steps to workers
    (``SHUCANG_EXECUTOR=celery``: orchestration.instance.celery_workers), with its steps on the workers, as a
    launched run has them: the workers rebuild the job from the code location."""
    if job.executor_def.name != "celery":
        return job.execute_in_process(
            instance=instance,
            run_config=run_config,
            tags=tags,
            partition_key=partition_key,
            asset_selection=list(asset_selection) if asset_selection is not None else None,
            raise_on_error=raise_on_error,
        )
    return dg.execute_job(
        reconstructable_job(job.name),
        instance,
        run_config=run_config,
        tags={**(tags or {}), **({"dagster/partition": partition_key} if partition_key else {})},
        asset_selection=list(asset_selection) if asset_selection is not None else None,
        raise_on_error=raise_on_error,
    )


def reconstructable_job(name: str):
    """A job of the code location as a worker process rebuilds it: a pointer to the module and its ``defs``, as
    the code server gives the daemon's runs (``dg.reconstructable`` cannot name the implicit asset job, whose
    name a repository reserves; dagster's ReconstructableRepository has no public module)."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    return ReconstructableRepository.for_module(
        "orchestration.definitions", "defs", working_directory=str(Path(__file__).resolve().parents[1])
    ).get_reconstructable_job(name)


def definitions(assets: dg.Definitions | Iterable, resources: Mapping | None = None) -> dg.Definitions:
    """``assets`` (a code location, or assets as ``dg.materialize`` takes them) with ``resources`` on top."""
    if isinstance(assets, dg.Definitions):
        if not resources:
            return assets
        return dg.Definitions(
            assets=list(assets.assets or []),
            asset_checks=list(assets.asset_checks or []),
            resources={**(assets.resources or {}), **resources},
            executor=assets.executor or dg.in_process_executor,
        )
    return dg.Definitions(assets=list(assets), resources=dict(resources or {}), executor=dg.in_process_executor)


def materialize(
    defs: dg.Definitions | Iterable,
    selection: Targets | Iterable[dg.AssetKey] | dg.AssetSelection | None = None,
    instance: dg.DagsterInstance | None = None,
    *,
    resources: Mapping | None = None,
    run_config: Mapping | None = None,
    tags: Mapping[str, str] | None = None,
    raise_on_error: bool = True,
) -> Runs:
    """Materialise ``selection`` (assets, or assets → partitions) of ``defs`` as the runs ``stages`` plans —
    what ``dg.materialize`` does for assets of one partitioning. ``selection`` None: every asset that can be
    materialised. ``run_config``'s op config goes to the runs that execute that op."""
    defs = definitions(defs, resources)
    graph = defs.resolve_asset_graph()
    if selection is None:
        selection = [k for k in graph.materializable_asset_keys]
    elif isinstance(selection, dg.AssetSelection):
        selection = selection.resolve(graph)
    targets: Targets = selection if isinstance(selection, Mapping) else dict.fromkeys(selection)
    instance = instance or dg.DagsterInstance.ephemeral()
    # the job the UI's "Materialize" launches: any assets, one partitions definition per run
    job = defs.resolve_implicit_global_asset_job_def()
    if job.executor_def.name == "celery" and (resources or defs is not _location()):
        raise ValueError("steps on workers run the code location's own definitions: no other assets or resources")
    results: list[dg.ExecuteInProcessResult] = []
    planned = 0
    for stage in stages(graph, targets):
        # the periods of a stage are known once the stages before it ran (std builds what raw holds)
        runs: list[tuple[list[dg.AssetKey], dg.PartitionKeyRange | None]] = []
        if stage.pdef is None:
            runs.append((stage.keys, None))
        else:
            by_range: dict[tuple, list[dg.AssetKey]] = {}
            for key in stage.keys:
                wanted = tuple(_ranges(graph, instance, key, targets.get(key), (defs.resources or {}).get("landing")))
                by_range.setdefault(wanted, []).append(key)
            # nothing wanted (no period of its input exists): nothing to build
            runs += [(chosen, r) for wanted, chosen in by_range.items() for r in wanted]
        planned += len(runs)
        for chosen, r in runs:
            ops = {defs.resolve_assets_def(k).op.name for k in chosen}
            config = dict(run_config.to_config_dict() if isinstance(run_config, dg.RunConfig) else run_config or {})
            if "ops" in config:
                config["ops"] = {op: c for op, c in config["ops"].items() if op in ops}
            single = r is not None and r.start == r.end
            result = execute(
                job,
                instance,
                run_config=config,
                tags={**(tags or {}), **(range_tags(r) if r is not None and not single else {})},
                partition_key=r.start if single else None,
                asset_selection=chosen,
                raise_on_error=raise_on_error,
            )
            results.append(result)
            if not result.success:
                return Runs(results, planned)
    return Runs(results, planned)


def requested(result) -> dict[dg.AssetKey, list[str] | None]:
    """What a round of automation (``evaluate_automation_conditions``) requests, as ``materialize`` targets."""
    out: dict[dg.AssetKey, list[str] | None] = {}
    for r in result.results:
        subset = r.true_subset
        if not subset.size:
            continue
        if subset.is_partitioned:
            out[r.key] = sorted(subset.expensively_compute_partition_keys())
        else:
            out[r.key] = None
    return out
