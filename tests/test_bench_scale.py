"""The scale model's arithmetic (benchmarks/scale.py): growth exponents between consecutive scales."""

import math

import pytest

from benchmarks.scale import STAGES, exponents


def _run(scale: float, seconds: dict[str, float]) -> dict:
    return {"scale": scale, **{s: {"seconds": seconds[s]} for s in STAGES}}


def test_growth_exponents_say_how_a_stage_grows_with_its_data():
    runs = [
        _run(1, {"collect": 2.0, "std": 4.0, "dbt": 10.0, "publish": 1.0}),
        _run(10, {"collect": 20.0, "std": 8.0, "dbt": 1000.0, "publish": 1.0}),
        _run(100, {"collect": 200.0, "std": 80.0, "dbt": 10_000.0, "publish": 10.0}),
    ]
    first, second = exponents(runs)
    assert (first["from"], first["to"], second["from"], second["to"]) == (1, 10, 10, 100)
    assert first["collect"] == pytest.approx(1.0)  # ten times the data, ten times the time: linear
    assert first["std"] == pytest.approx(math.log10(2))  # fixed costs still dominate
    assert first["dbt"] == pytest.approx(2.0)  # quadratic
    assert first["publish"] == pytest.approx(0.0) and second["publish"] == pytest.approx(1.0)
    assert exponents(runs[:1]) == []
