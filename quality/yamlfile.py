"""Configuration files are YAML: read them with libyaml's C loader (pure-Python parsing cost ~0.8 s of every
start of the code location), safe either way."""

from __future__ import annotations

from pathlib import Path

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(path: Path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506 — a safe loader
