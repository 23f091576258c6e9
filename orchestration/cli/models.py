"""``models``: the dbt models and their publication by hand (the ``model_all`` job), on the configured dbt
target (``SHUCANG_DBT_TARGET``: local DuckDB or Sail)."""

from __future__ import annotations

from orchestration.settings import Settings


def models(s: Settings, full_refresh: bool) -> int:
    """The ``model_all`` job by hand: one dbt build on the configured target (``SHUCANG_DBT_TARGET``) — the
    incremental models for the periods their inputs changed, or every period with ``full_refresh`` — then
    publication through the gates. A modeler's command after changing a model, and the way onto another engine."""
    from dagster import DagsterInstance

    from orchestration import instance as dagster_home
    from orchestration import runs
    from orchestration.definitions import defs

    dagster_home.prepare(s.dagster_home)
    job = defs.resolve_job_def("model_all")
    config = {"ops": {"dbt_models": {"config": {"full_refresh": True}}}} if full_refresh else None
    with DagsterInstance.get() as instance:
        result = runs.execute(
            job, instance, run_config=config, tags={"shucang/dbt_target": s.dbt_target}, raise_on_error=False
        )
    print(f"model_all on {s.dbt_target}: run {result.run_id} {'SUCCESS' if result.success else 'FAILURE'}")
    return 0 if result.success else 1
