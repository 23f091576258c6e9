"""A broken registry is refused with an error that names the file and the key."""

import pytest
import yaml

from lakehouse.config import ConfigError
from lakehouse.registry import REGISTRY_PATH, load_registry, registry


def _write(tmp_path, mutate):
    raw = yaml.safe_load(REGISTRY_PATH.read_text(encoding="utf-8"))
    mutate(raw)
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_the_shipped_registry_is_valid_and_complete():
    reg = registry()
    assert len(reg.datasets) == 10
    assert {d.format for d in reg.datasets} == {"csv", "xlsx", "jsonl"}
    assert {d.department for d in reg.datasets} == set(reg.departments)


@pytest.mark.parametrize(
    "mutate,fragment",
    [
        (
            lambda r: r["datasets"][1].update(department="police"),
            "datasets[1] (tax_monthly): unknown department 'police'",
        ),
        (lambda r: r["datasets"][0]["columns"][2].update(name="Legal Rep"), "datasets[0].columns[2].name"),
        (lambda r: r["datasets"][2].update(share_type="随便共享"), "datasets[2].share_type"),
        (lambda r: r["datasets"][3]["columns"].append(dict(r["datasets"][3]["columns"][0])), "duplicate column names"),
        (lambda r: r["datasets"][4]["columns"][4].update(unit_column="nope"), "unit_column 'nope' is not a column"),
    ],
)
def test_errors_name_file_and_key(tmp_path, mutate, fragment):
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_unparseable_yaml_names_the_file(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text("datasets: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="sources.yaml: cannot read"):
        load_registry(path)
