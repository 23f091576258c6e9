"""Every configuration file of the warehouse is YAML, loaded here and validated against its model.

One door: ``load(path, Model)`` reads the file with libyaml's C loader (pure-Python parsing costs ~0.8 s of
every start of the code location) and validates it with pydantic. Models derive from ``Strict``: a key the
model does not know is an error, never silently ignored, and every error names the file and the key path
(``datasets[3].columns[0].grade: …``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be read or does not validate; the message names the file and key."""


class Strict(BaseModel):
    """A configuration model: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# pydantic names the member of a union it tried inside an error's location (``literal['keep', …]``,
# ``dict[…]``): not a key of the file
_UNION_MEMBER = re.compile(r"^(literal|dict|list|tuple|set|str|int|float|bool|function-[a-z]+)\[")


def where(loc: tuple) -> str:
    """A pydantic error location as a key path: ``datasets[3].columns[0].grade``."""
    keys = [p for p in loc if not (isinstance(p, str) and _UNION_MEMBER.match(p))]
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in keys).lstrip(".") or "(top level)"


def read_yaml(path: Path, untrusted: bool = False):
    """The parsed YAML document (safe loader); unreadable or malformed files raise ConfigError.

    ``untrusted`` (a document from outside, e.g. a data request): anchors and aliases are refused, so a
    small document cannot expand into a huge one (a "billion laughs" document)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        if untrusted:
            for event in yaml.parse(text, Loader=_LOADER):
                if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                    mark = event.start_mark
                    raise ConfigError(f"{path}: line {mark.line + 1}: YAML anchors and aliases are not accepted here")
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 — a safe loader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc


def validate(document, model: type[M], path: Path | str, what: str | None = None) -> M:
    """``document`` validated against ``model``; errors name ``path`` and each offending key."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{where(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: invalid {what or model.__name__}: {problems}") from exc


def load(path: Path, model: type[M], what: str | None = None) -> M:
    """Read and validate one configuration file."""
    return validate(read_yaml(path), model, path, what)
