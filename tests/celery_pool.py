"""The tests' Celery workers: ``orchestration.instance.celery_workers.LocalWorkers`` with the tests folder on
their path (the test jobs' module lives there)."""

from __future__ import annotations

from pathlib import Path

from orchestration.instance.celery_workers import LocalWorkers


class CeleryWorkers(LocalWorkers):
    def __init__(self, folder: Path, count: int = 2, env: dict[str, str] | None = None):
        super().__init__(folder, count, env, paths=(Path(__file__).resolve().parent,))
