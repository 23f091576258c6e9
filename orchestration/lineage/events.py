"""One Dagster run → OpenLineage RunEvents, read from the run's event log and the asset graph.

Per run: a job-level START and COMPLETE/FAIL/ABORT for the Dagster job. Per planned asset of every
step that started: a START at the step's start and a COMPLETE, FAIL or ABORT at its end, with a parent
facet pointing at the Dagster run. Run ids of asset runs are derived from (run id, step, asset), so the
same run always yields the same events.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

import attr
import dagster as dg
import openlineage.client
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.generated import parent_run, processing_engine_run
from openlineage.client.generated.base import DatasetFacet

from orchestration.lineage import facets as f
from orchestration.lineage.naming import PRODUCER, Naming

openlineage.client.set_producer(PRODUCER)
_RUN_NAMESPACE = uuid.UUID("6f1d7d0e-5c1e-4f6e-9a3e-3c2b1a0d9e8f")
_FINISH = {"STEP_SUCCESS": RunState.COMPLETE, "STEP_FAILURE": RunState.FAIL}
_RUN_END = {
    "PIPELINE_SUCCESS": RunState.COMPLETE,
    "PIPELINE_FAILURE": RunState.FAIL,
    "PIPELINE_CANCELED": RunState.ABORT,
}


@attr.define
class ColumnLineageCoverageFacet(DatasetFacet):
    """Output columns whose origin no asset declared: lineage reports them as unknown, never guesses."""

    unknownOrigin: list[str]  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return f"{PRODUCER.rsplit('/tree/', 1)[0]}/blob/main/docs/lineage/ColumnLineageCoverageFacet.json"


@attr.define
class SourceFileFacet(DatasetFacet):
    """The project file a dataset is loaded from as it stands (a dbt seed): its columns start there."""

    path: str

    @staticmethod
    def _get_schema() -> str:
        return f"{PRODUCER.rsplit('/tree/', 1)[0]}/blob/main/docs/lineage/SourceFileFacet.json"


SEED_FOLDER = "dbt_project/seeds"


@dataclass
class _Step:
    key: str
    started: float | None = None
    ended: float | None = None
    state: RunState | None = None
    error: tuple[str, str | None] | None = None
    planned: list[dg.AssetKey] = field(default_factory=list)
    materialized: dict[dg.AssetKey, tuple[float, dict]] = field(default_factory=dict)
    checks: dict[dg.AssetKey, list[dict]] = field(default_factory=dict)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def asset_run_id(run_id: str, step_key: str, key: dg.AssetKey) -> str:
    return str(uuid.uuid5(_RUN_NAMESPACE, f"{run_id}/{step_key}/{key.to_user_string()}"))


def _read_log(instance: dg.DagsterInstance, run_id: str) -> tuple[dict[str, _Step], dict[str, float | RunState]]:
    steps: dict[str, _Step] = {}
    run: dict = {}
    for entry in instance.all_logs(run_id):
        ev = entry.dagster_event
        if ev is None:
            continue
        kind, ts = ev.event_type_value, entry.timestamp
        step = steps.setdefault(ev.step_key, _Step(ev.step_key)) if ev.step_key else None
        if kind == "PIPELINE_START":
            run["started"] = ts
        elif kind in _RUN_END:
            run["ended"], run["state"] = ts, _RUN_END[kind]
        elif step is None:
            continue
        elif kind == "ASSET_MATERIALIZATION_PLANNED":
            if ev.asset_key not in step.planned:  # a run over a range of partitions plans each of them
                step.planned.append(ev.asset_key)
        elif kind == "STEP_START":
            step.started = ts
        elif kind in _FINISH:
            step.ended, step.state = ts, _FINISH[kind]
            if kind == "STEP_FAILURE":
                step.error = _error(ev.event_specific_data.error)
        elif kind == "ASSET_MATERIALIZATION":
            mat = ev.event_specific_data.materialization
            step.materialized[mat.asset_key] = (ts, dict(mat.metadata))
        elif kind == "ASSET_CHECK_EVALUATION":
            e = ev.event_specific_data
            step.checks.setdefault(e.asset_key, []).append(
                {
                    "name": e.check_name,
                    "passed": e.passed,
                    "severity": e.severity.value.lower() if e.severity else "error",
                    "description": e.description,
                }
            )
    return steps, run


def _error(err) -> tuple[str, str | None]:
    """The root cause first (what a steward needs), then the Dagster frame it surfaced in."""
    if err is None:
        return "step failed", None
    root = err
    while root.cause is not None:
        root = root.cause
    message = root.message.strip()
    if root is not err:
        message += f" (surfaced as: {err.message.strip()})"
    return message, err.to_string()


class RunLineage:
    """Builds the events of one run against one code location's asset graph."""

    def __init__(self, instance: dg.DagsterInstance, graph, naming: Naming):
        self.instance, self.graph, self.naming = instance, graph, naming

    def _node(self, key: dg.AssetKey):
        return self.graph.get(key) if self.graph.has(key) else None

    def _definition_facets(self, key: dg.AssetKey) -> tuple[dict, dict]:
        node = self._node(key)
        ref = self.naming.dataset(list(key.path))
        if node is None:
            return f.dataset_facets(ref, None, [], {}), {}
        return f.dataset_facets(ref, node.description, list(node.owners), node.metadata), dict(node.metadata)

    def _read_version(self, key: dg.AssetKey, before: float) -> dict:
        """The version of an input as it stood when the step started (its latest materialisation then)."""
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, before_timestamp=before), limit=1, ascending=False
        ).records
        if not records:
            return {}
        v = f.version(records[0].asset_materialization.metadata)
        return {"version": v} if v else {}

    def _inputs(self, key: dg.AssetKey, started: float) -> list[InputDataset]:
        node = self._node(key)
        out = []
        for parent in sorted(node.parent_keys if node else [], key=lambda k: k.to_user_string()):
            ref = self.naming.dataset(list(parent.path))
            facets, _ = self._definition_facets(parent)
            out.append(
                InputDataset(
                    namespace=ref.namespace, name=ref.name, facets={**facets, **self._read_version(parent, started)}
                )
            )
        return out

    def _output(self, key: dg.AssetKey, step: _Step, final: bool) -> OutputDataset:
        ref = self.naming.dataset(list(key.path))
        facets, definition = self._definition_facets(key)
        output_facets = {}
        if final and key in step.materialized:
            metadata = {**definition, **step.materialized[key][1]}
            if v := f.version(metadata):
                facets["version"] = v
            columns = [fl.name for fl in (facets["schema"].fields if "schema" in facets else [])]
            lineage, unknown = f.column_lineage(metadata, self.naming, columns)
            if lineage:
                facets["columnLineage"] = lineage
            if unknown:
                facets["shucang_columnLineageCoverage"] = ColumnLineageCoverageFacet(unknownOrigin=unknown)
            if str(getattr(uid := definition.get("dagster_dbt/unique_id", ""), "value", uid)).startswith("seed."):
                facets["shucang_sourceFile"] = SourceFileFacet(path=f"{SEED_FOLDER}/{key.path[-1]}.csv")
            facets.update(f.quality(step.checks.get(key, []), metadata))
            output_facets = f.output_statistics(metadata)
        return OutputDataset(namespace=ref.namespace, name=ref.name, facets=facets, outputFacets=output_facets)

    def events(self, run_id: str) -> list[RunEvent]:
        dagster_run = self.instance.get_run_by_id(run_id)
        steps, run = _read_log(self.instance, run_id)
        ns = self.naming.job_namespace
        parent_job = Job(
            namespace=ns, name=dagster_run.job_name, facets=f.job_facets(f"Dagster job {dagster_run.job_name}", [])
        )
        engine = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=dg.__version__, name="Dagster", openlineageAdapterVersion=openlineage.client.__version__
            )
        }
        events = []
        if "started" in run:
            events.append(
                RunEvent(
                    eventType=RunState.START,
                    eventTime=_iso(run["started"]),
                    run=Run(runId=run_id, facets=engine),
                    job=parent_job,
                )
            )
        parent = {
            "parent": parent_run.ParentRunFacet(
                run=parent_run.Run(runId=run_id), job=parent_run.Job(namespace=ns, name=dagster_run.job_name)
            )
        }
        for step in steps.values():
            if step.started is None:
                continue  # never ran (e.g. skipped after an upstream failure): no run to report
            # a step with no end of its own ends with the run: cancelled → ABORT, otherwise → FAIL
            state = step.state or (
                {RunState.ABORT: RunState.ABORT}.get(run["state"], RunState.FAIL) if "state" in run else None
            )
            # tables the step wrote besides its own assets (quarantine, scores, logs): outputs of its first asset
            side = [k for k in step.materialized if k not in step.planned]
            for n, key in enumerate(step.planned):
                node = self._node(key)
                job = Job(
                    namespace=ns,
                    name=self.naming.job_name(list(key.path)),
                    facets=f.job_facets(node.description if node else None, list(node.owners) if node else []),
                )
                run_obj = Run(runId=asset_run_id(run_id, step.key, key), facets={**parent, **engine})
                inputs = self._inputs(key, step.started)
                events.append(
                    RunEvent(
                        eventType=RunState.START,
                        eventTime=_iso(step.started),
                        run=run_obj,
                        job=job,
                        inputs=inputs,
                        outputs=[self._output(key, step, final=False)],
                    )
                )
                if state is None:
                    continue  # still running
                end = step.ended or run.get("ended") or step.started
                run_end = Run(
                    runId=run_obj.runId, facets={**run_obj.facets, **(f.error(*step.error) if step.error else {})}
                )
                events.append(
                    RunEvent(
                        eventType=state,
                        eventTime=_iso(end),
                        run=run_end,
                        job=job,
                        inputs=inputs,
                        outputs=[self._output(k, step, final=True) for k in [key, *(side if n == 0 else [])]],
                    )
                )
        if "state" in run:
            events.append(
                RunEvent(
                    eventType=run["state"],
                    eventTime=_iso(run["ended"]),
                    run=Run(runId=run_id, facets=engine),
                    job=parent_job,
                )
            )
        return events
