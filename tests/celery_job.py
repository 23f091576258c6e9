"""A job for tests/test_celery.py, importable by the Celery workers the test starts (a step runs in a
worker that reconstructs the job from this module).

``CELERY_TEST_DIR`` is where the steps leave their traces: ``<step>.<attempt>.pid`` (the process that ran
it) and ``<step>.done``. ``slow`` waits on its first attempt until the test kills its worker, so the run
can only finish if the step is given to another worker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from orchestration.instance import celery_workers


def _trace(step: str) -> Path:
    folder = Path(os.environ["CELERY_TEST_DIR"])
    attempt = len(list(folder.glob(f"{step}.*.pid"))) + 1
    (folder / f"{step}.{attempt}.pid").write_text(str(os.getpid()))
    return folder


@dg.asset
def first() -> dg.MaterializeResult:
    folder = _trace("first")
    (folder / "first.done").write_text("1")
    return dg.MaterializeResult(metadata={"pid": os.getpid()})


@dg.asset(deps=[first])
def slow() -> dg.MaterializeResult:
    folder = _trace("slow")
    if len(list(folder.glob("slow.*.pid"))) == 1:  # the first attempt: its worker is killed meanwhile
        time.sleep(120)
    (folder / "slow.done").write_text("1")
    return dg.MaterializeResult(metadata={"pid": os.getpid()})


@dg.asset(deps=[first])
def beside() -> dg.MaterializeResult:
    _trace("beside")
    return dg.MaterializeResult(metadata={"pid": os.getpid()})


def job() -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[first, slow, beside],
        jobs=[
            dg.define_asset_job(
                "celery_test", executor_def=celery_workers.executor({**os.environ, "SHUCANG_EXECUTOR": "celery"})
            )
        ],
    )
    return defs.resolve_job_def("celery_test")
