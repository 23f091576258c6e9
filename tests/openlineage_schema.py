"""Validate emitted events against the OpenLineage JSON schema and each facet's own schema.

The schemas are test data carried in the repository (``tests/data/openlineage``, see its README).
"""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SPEC_DIR = Path(__file__).resolve().parent / "data" / "openlineage"
OWN_FACETS = Path(__file__).resolve().parent.parent / "docs" / "lineage"
_FACET_GROUPS = (("run", "facets"), ("job", "facets"))


class EventValidator:
    def __init__(self, spec_dir: Path = SPEC_DIR):
        if not (spec_dir / "OpenLineage.json").is_file():
            raise FileNotFoundError(f"OpenLineage spec not found at {spec_dir}")
        docs = [
            json.loads(p.read_text())
            for p in [
                spec_dir / "OpenLineage.json",
                *sorted((spec_dir / "facets").glob("*.json")),
                *sorted(OWN_FACETS.glob("*.json")),
            ]
        ]
        self.registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs)
        self.by_file = {d["$id"].rsplit("/", 1)[-1]: d for d in docs}
        core = self.by_file["OpenLineage.json"]["$id"]
        self.event = Draft202012Validator({"$ref": f"{core}#/$defs/RunEvent"}, registry=self.registry)

    def _facets(self, event: dict):
        for owner, group in _FACET_GROUPS:
            yield from (event.get(owner) or {}).get(group, {}).items()
        for side, groups in (("inputs", ("facets", "inputFacets")), ("outputs", ("facets", "outputFacets"))):
            for ds in event.get(side) or []:
                for group in groups:
                    yield from (ds.get(group) or {}).items()

    def errors(self, event: dict) -> list[str]:
        problems = [f"event: {e.message} at {list(e.absolute_path)}" for e in self.event.iter_errors(event)]
        for key, facet in self._facets(event):
            url = facet.get("_schemaURL", "")
            schema = self.by_file.get(url.split("#")[0].rsplit("/", 1)[-1])
            if schema is None:
                problems.append(f"facet {key}: no schema known for {url!r}")
                continue
            v = Draft202012Validator(schema, registry=self.registry)
            problems += [f"facet {key}: {e.message} at {list(e.absolute_path)}" for e in v.iter_errors({key: facet})]
        return problems
