"""The repository's structure: it stands alone, and its packages import one another without cycles."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "orchestration",
    "lakehouse",
    "assets",
    "quality",
    "privacy",
    "sensors",
    "exchange",
    "sourcegen",
    "benchmarks",
)
# Files that configure or drive the product; tests/ is included, it must stand alone as well.
SOURCE_SUFFIXES = {".py", ".yaml", ".yml", ".toml", ".sql", ".sh", ".cfg", ".ini", ".json", ".md"}


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    files = [ROOT / line for line in out.splitlines()]
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    files += [ROOT / line for line in untracked.splitlines()]
    return [
        f
        for f in files
        if f.is_file()
        and (f.suffix in SOURCE_SUFFIXES or f.name in ("Makefile", "run"))
        and "data/openlineage" not in f.as_posix()  # the vendored spec names openlineage.io URLs, no paths
    ]


# A relative path literal that climbs (``../x``); it escapes when, resolved from the file's folder, it leaves
# the checkout (``dbt_project/profiles.yml`` naming ``../data`` stays inside).
_RELATIVE = re.compile(r"(?<![\w.])((?:\.\.[\\/])+[\w.\\/-]*)")
_NAMED = [
    re.compile(r"\bshared[\\/]spec\b"),  # the team's reference shelf beside the checkout
    re.compile(r"\b(?:PROJECT_)?ROOT\.parent\b|\bROOT\.parents\["),  # climbing above the project root in code
]
# A test that sends a traversal attack names an escaping path on purpose and says so on that line.
_ATTACK_MARK = "# traversal attack"


def _escapes(path: Path, text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        if _ATTACK_MARK in line:
            continue
        for m in _RELATIVE.finditer(line):
            target = (path.parent / m.group(1)).resolve()
            if not target.is_relative_to(ROOT):
                found.append(m.group(1))
        found += [m.group(0) for p in _NAMED for m in p.finditer(line)]
    return found + _parent_chain_escapes(path, text)


def _parent_chain_escapes(path: Path, text: str) -> list[str]:
    """``Path(__file__).resolve().parent…``: more ``.parent`` steps than the file is deep leaves the checkout."""
    depth = len(path.relative_to(ROOT).parts)  # tests/x.py: two parts, so at most two .parent steps
    found = []
    for m in re.finditer(r"Path\(__file__\)(?:\.resolve\(\))?((?:\.parent)+)(?:\.parents\[(\d+)\])?", text):
        steps = m.group(1).count(".parent") + (int(m.group(2)) + 1 if m.group(2) else 0)
        if steps > depth:
            found.append(m.group(0))
    for m in re.finditer(r"Path\(__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]", text):
        if int(m.group(1)) + 1 > depth:
            found.append(m.group(0))
    return found


def test_nothing_reads_outside_the_checkout():
    """A user's fresh clone has nothing beside it: no file of the project names a path above its root."""
    offenders = []
    for f in _tracked_files():
        if f == Path(__file__).resolve():
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{f.relative_to(ROOT)}: {hit!r}" for hit in _escapes(f, text)]
    assert offenders == []


def test_the_escape_scan_catches_what_it_is_for(tmp_path):
    """The scan above must fail on the kinds of escape it looks for (guards against a scan that sees nothing)."""
    here = ROOT / "tests" / "x.py"
    samples = [
        'SPEC = PROJECT_ROOT.parent / "spec"',
        'open("../../' + 'shared/spec/openlineage/OpenLineage.json")',  # split: the team's own grep looks too
        "cp ../../elsewhere/x .",
        "Path(__file__).resolve().parent.parent.parent / 'sibling'",
        "Path(__file__).parents[2] / 'sibling'",
    ]
    for sample in samples:
        assert _escapes(here, sample), sample
    inside = [
        "Path(__file__).resolve().parent.parent / 'docs'",
        'open("../docs/modelling.md")',
        "a..b and x = 1..2; range(a, b)",
        'parse(body, "../../etc")  ' + _ATTACK_MARK,
    ]
    for sample in inside:
        assert not _escapes(here, sample), sample


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Every product module and the product modules it imports, at any depth of the file (a function-level
    import is still an import: hiding a cycle in a function does not remove it)."""
    modules = {
        _module_name(p): p for pkg in PACKAGES if (ROOT / pkg).is_dir() for p in sorted((ROOT / pkg).rglob("*.py"))
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                # the longest product module the import names (``from a.b import c`` may name module a.b.c)
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_product_packages_have_no_import_cycle():
    graph = import_graph()
    assert {"orchestration.definitions", "assets.collect", "lakehouse.lake", "exchange.publication"} <= set(graph)
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_dbt_models_are_laid_out_like_jaffle_shop():
    """One yml per model beside its SQL, declaring that model (and its unit tests) only; every model and
    every column documented; no dbt user file committed."""
    import yaml

    models = ROOT / "dbt_project" / "models"
    sql = sorted(models.rglob("*.sql"))
    assert sql
    for path in sql:
        yml = path.with_suffix(".yml")
        assert yml.is_file(), f"{path.relative_to(ROOT)} has no {yml.name} beside it"
        doc = yaml.safe_load(yml.read_text(encoding="utf-8"))
        assert [m["name"] for m in doc["models"]] == [path.stem], yml
        assert all(t["model"] == path.stem for t in doc.get("unit_tests", [])), yml
        model = doc["models"][0]
        assert model.get("description"), f"{path.stem}: no description"
        undocumented = [c["name"] for c in model.get("columns", []) if not c.get("description")]
        assert model.get("columns") and not undocumented, f"{path.stem}: columns without a description {undocumented}"
    others = {p.name for p in models.rglob("*.yml")} - {p.with_suffix(".yml").name for p in sql}
    assert others <= {"_std__sources.yml", "_ops__sources.yml", "_groups.yml"}, others
    tracked = subprocess.run(["git", "ls-files", "dbt_project"], cwd=ROOT, capture_output=True, text=True).stdout
    assert ".user.yml" not in tracked


def test_a_public_models_key_is_declared_once_as_its_uniqueness_test():
    import json

    from orchestration.dbt.project import is_public, model_key, model_meta

    manifest = json.loads((ROOT / "dbt_project" / "target" / "manifest.json").read_text(encoding="utf-8"))
    public = [p for p in manifest["nodes"].values() if is_public(p)]
    assert public
    for props in public:
        assert "key" not in model_meta(props), f"{props['name']}: the key is its uniqueness test, not meta"
        key = model_key(manifest, props)
        assert key and set(key) <= set(props["columns"]), props["name"]
    orphan = {"unique_id": "model.shucang.none", "name": "none", "original_file_path": "models/none.sql"}
    with pytest.raises(ValueError, match="declares no key"):
        model_key(manifest, orphan)


def test_the_data_the_tests_read_is_tracked():
    """Test data in the working tree but not in git (an ignore rule that catches it) passes here and fails
    in a fresh clone: every file under tests/data and docs/lineage is tracked."""
    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split())
    present = [
        p.relative_to(ROOT).as_posix()
        for d in ("tests/data", "docs/lineage")
        for p in (ROOT / d).rglob("*")
        if p.is_file()
    ]
    assert present and [p for p in present if p not in tracked] == []


def test_every_published_model_declares_what_it_discloses():
    """A public dbt model says whether it identifies firms by design or is de-identified (and then how:
    quasi-identifiers or a small-cell count); the publish gate refuses one that does not say."""
    from orchestration.dbt.project import column_meta, is_public, manifest, model_meta, project

    models = [p for p in manifest(project())["nodes"].values() if p.get("resource_type") == "model" and is_public(p)]
    assert len(models) >= 10
    for props in models:
        meta = model_meta(props)
        assert meta.get("disclosure") in ("identified", "deidentified"), props["name"]
        if meta["disclosure"] == "deidentified":
            quasi = [c for c in props["columns"] if column_meta(props, c).get("role") == "quasi"]
            counts = meta.get("small_cell_count")
            counts = [counts] if isinstance(counts, str) else counts or []
            assert quasi or counts, props["name"]
            assert all(c in props["columns"] for c in counts), props["name"]
