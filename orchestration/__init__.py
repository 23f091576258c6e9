"""Dagster wiring only: ``orchestration.definitions.defs`` composes what each package exports."""
