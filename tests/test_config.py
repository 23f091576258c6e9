"""Every configuration file goes through one validating loader: an unknown key, a wrong value or an
unreadable file is an error that names the file and the key path — never silently ignored."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from exchange.requests import POLICY_PATH as EXCHANGE_POLICY
from exchange.requests import ExchangePolicy
from lakehouse import config
from lakehouse.config import ConfigError
from lakehouse.registry import REGISTRY_PATH, Overlay, Registry
from privacy.grading import GRADING_PATH, Vocabulary
from privacy.policy import POLICY_PATH as PRIVACY_POLICY
from privacy.policy import PrivacyPolicy
from quality.reconcile import CONFIG as RECONCILE_PATH
from quality.reconcile import Reconciliation
from quality.rulebook import RULES_DIR, RuleSet
from quality.units import UNITS_PATH, Units

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [
    (REGISTRY_PATH, Registry),
    (REGISTRY_PATH.with_name("sources.live.yaml"), Overlay),
    (PRIVACY_POLICY, PrivacyPolicy),
    (GRADING_PATH, Vocabulary),
    (EXCHANGE_POLICY, ExchangePolicy),
    (RECONCILE_PATH, Reconciliation),
    (UNITS_PATH, Units),
    *((p, RuleSet) for p in sorted(RULES_DIR.glob("*.yaml"))),
]
# YAML that is not warehouse configuration: Dagster's and dbt's own files (their tools validate them) and
# the example data requests (documents a consumer files; exchange.requests.parse validates them).
NOT_CONFIG = ("workspace.yaml", "orchestration/instance/dagster.yaml", "dbt_project/", "exchange/examples/", "tests/")


def test_every_configuration_file_has_a_model_and_validates():
    tracked = subprocess.run(["git", "ls-files", "*.yaml", "*.yml"], cwd=ROOT, capture_output=True, text=True).stdout
    configs = {p.relative_to(ROOT).as_posix() for p, _ in CONFIGS}
    unmodelled = [f for f in tracked.split() if not f.startswith(NOT_CONFIG) and f not in configs]
    assert unmodelled == []
    for path, model in CONFIGS:
        assert isinstance(config.load(path, model), model), path


def _mappings(doc, path=()):
    """Every mapping in a document, by key path."""
    if isinstance(doc, dict):
        yield path, doc
        for k, v in doc.items():
            yield from _mappings(v, (*path, k))
    elif isinstance(doc, list):
        for n, v in enumerate(doc):
            yield from _mappings(v, (*path, n))


def _dotted(path) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


def _free_form(file: str, where: tuple) -> bool:
    """Mappings whose keys are data, not settings: a measure's conversion factors are keyed by unit name."""
    return file == "units.yaml" and len(where) == 3 and where[0] == "measures" and where[2] == "factors"


@pytest.mark.parametrize(("path", "model"), CONFIGS, ids=lambda x: x.name if isinstance(x, Path) else "")
def test_an_unknown_key_anywhere_is_refused_with_file_and_key_path(path, model, tmp_path):
    """A key planted in each mapping of the file, one at a time, is refused, naming file and key path."""
    original = path.read_text(encoding="utf-8")
    planted, shapes = 0, set()
    for where, _ in list(_mappings(yaml.safe_load(original))):
        shape = tuple("[]" if isinstance(k, int) else k for k in where)
        if shape in shapes:
            continue  # one mapping of each kind: datasets[3].columns[0] stands for every column
        shapes.add(shape)
        doc = yaml.safe_load(original)
        node = doc
        for k in where:
            node = node[k]
        node["gate_enabled"] = True  # a key that looks live and would be ignored
        bad = tmp_path / path.name
        bad.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        if _free_form(path.name, where):
            continue
        with pytest.raises(ConfigError) as err:
            config.load(bad, model)
        message = str(err.value)
        assert str(bad) in message and _dotted((*where, "gate_enabled")) in message, message
        planted += 1
    assert planted


def test_a_wrong_value_and_an_unreadable_file_say_where(tmp_path):
    doc = yaml.safe_load(PRIVACY_POLICY.read_text(encoding="utf-8"))
    doc["zones"]["std"]["direct"] = "publish-as-is"
    bad = tmp_path / "policy.yaml"
    bad.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"policy.yaml: invalid privacy policy: zones\.std\.direct"):
        config.load(bad, PrivacyPolicy, "privacy policy")
    doc["zones"]["std"]["direct"] = "pseudonymise"
    doc["zones"]["publish"]["direct"] = "pseudonymise"  # only the std stage transforms identifiers
    bad.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="zones.publish: only the std stage transforms identifiers"):
        config.load(bad, PrivacyPolicy)
    broken = tmp_path / "broken.yaml"
    broken.write_text("checks: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="broken.yaml: cannot read"):
        config.load(broken, Reconciliation)
    with pytest.raises(ConfigError, match="missing.yaml: cannot read"):
        config.load(tmp_path / "missing.yaml", Units)


def test_the_std_stage_does_what_the_privacy_policy_says(monkeypatch):
    """zones.std.direct and free_text are read: changing them changes what std does to those columns."""
    from lakehouse.registry import registry
    from privacy import policy

    ds = registry().dataset("amr_registration")
    assert policy.std_transforms(ds)["legal_rep_id_no"] == "pseudonymise"
    doc = policy.policy()
    changed = {**doc, "zones": {**doc["zones"], "std": {**doc["zones"]["std"], "direct": "redact"}}}
    monkeypatch.setattr(policy, "policy", lambda: changed)
    assert policy.std_transforms(ds)["legal_rep_id_no"] == "redact"
