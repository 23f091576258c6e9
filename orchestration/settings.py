"""One environment switch from which every path and option derives.

``SHUCANG_ENV`` picks the profile (local, ci, bench); ``SHUCANG_DATA_DIR`` moves all local data;
``LAKE_ROOT`` may point the lake at an object-store URI, with ``LAKE_STORAGE_OPTIONS`` as JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.lake import Lake

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("local", "ci", "bench")


@dataclass(frozen=True)
class Settings:
    env: str
    data_dir: Path
    lake_root: str
    landing_root: Path
    rejected_root: Path
    truth_dir: Path
    warehouse_path: Path
    dagster_home: Path
    key_file: Path  # pseudonymisation keys: outside the repository and the lake
    audit_log: Path  # hash-chained log of privileged operations
    exchange_dir: Path  # data requests (inbox, filed), consumer profiles and the exchange ledger
    sharing_endpoint: str  # where consumers reach the Delta Sharing service (written into their profiles)
    storage_options: dict[str, str] = field(default_factory=dict)
    # LANDING_ROOT an s3:// URI: the bucket departments upload to; landing_root is then its local mirror
    landing_bucket: str | None = None
    landing_storage_options: dict[str, str] = field(default_factory=dict)
    settle_seconds: float = 0.0  # landing: a file modified within this many seconds is still being written
    dbt_target: str = "local"  # SHUCANG_DBT_TARGET: local (DuckDB, the default) or sail (orchestration/dbt/sail.py)

    def lake(self) -> Lake:
        """The lake these settings point at: the one way to reach it."""
        return Lake(self.lake_root, dict(self.storage_options))


def settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    name = env.get("SHUCANG_ENV", "local")
    if name not in ENVIRONMENTS:
        raise ValueError(f"SHUCANG_ENV={name!r}: expected one of {ENVIRONMENTS}")
    default_data = PROJECT_ROOT / ("data" if name == "local" else f"data-{name}")
    data = Path(env.get("SHUCANG_DATA_DIR", default_data)).resolve()
    try:
        storage_options = json.loads(env.get("LAKE_STORAGE_OPTIONS", "{}"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"LAKE_STORAGE_OPTIONS is not valid JSON: {exc}") from exc
    landing = env.get("LANDING_ROOT", str(data / "landing"))
    bucket = landing if landing.startswith("s3://") else None
    try:
        landing_options = json.loads(env["LANDING_STORAGE_OPTIONS"]) if "LANDING_STORAGE_OPTIONS" in env else None
    except json.JSONDecodeError as exc:
        raise ValueError(f"LANDING_STORAGE_OPTIONS is not valid JSON: {exc}") from exc
    return Settings(
        env=name,
        data_dir=data,
        lake_root=env.get("LAKE_ROOT", str(data / "lake")),
        landing_root=data / "landing-cache" if bucket else Path(landing),
        rejected_root=Path(env.get("REJECTED_ROOT", data / "rejected")),
        truth_dir=data / "truth",
        warehouse_path=Path(env.get("WAREHOUSE_PATH", data / "warehouse.duckdb")),
        dagster_home=Path(env.get("DAGSTER_HOME", PROJECT_ROOT / ".dagster_home")),
        key_file=Path(
            env.get("SHUCANG_KEY_FILE")
            or os.environ.get("SHUCANG_KEY_FILE")  # a secret's location is the process's, whatever profile
            or Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "shucang" / "pseudonym_keys.json"
        ),
        audit_log=Path(env.get("SHUCANG_AUDIT_LOG", data / "audit" / "privileged.jsonl")),
        exchange_dir=Path(env.get("SHUCANG_EXCHANGE_DIR", data / "exchange")),
        sharing_endpoint=env.get("SHUCANG_SHARING_ENDPOINT", "http://127.0.0.1:8765/delta-sharing"),
        storage_options=storage_options,
        landing_bucket=bucket,
        landing_storage_options=storage_options if landing_options is None else landing_options,
        # generated test and benchmark data is complete when written; a real landing zone is not
        settle_seconds=float(env.get("SHUCANG_SETTLE_SECONDS", 10 if name == "local" else 0)),
        dbt_target=dbt_target(env),
    )


DBT_TARGETS = ("local", "sail")


def dbt_target(env) -> str:
    """The engine the dbt models run on: ``local`` (DuckDB, the embedded default) or ``sail``."""
    value = (env.get("SHUCANG_DBT_TARGET") or "local").strip()
    if value not in DBT_TARGETS:
        raise ValueError(f"SHUCANG_DBT_TARGET={value!r}: the dbt target is one of {', '.join(DBT_TARGETS)}")
    return value
