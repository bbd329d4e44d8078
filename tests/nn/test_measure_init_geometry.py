"""scripts/measure_init_geometry.py: the statistic and its two parts under the init laws."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "measure_init_geometry", ROOT / "scripts" / "measure_init_geometry.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parts_separate_scale_from_angles():
    full, diag, cos2 = _script().measure([32], ratio=4, trials=2)
    # orthogonal init: every part 0
    assert full["orthogonal"][0] == pytest.approx(0, abs=1e-12) and cos2["orthogonal"][0] == pytest.approx(0, abs=1e-12)
    # he (variance 2/n on a tall m = 4n kernel): column norms^2 ~ 8, far from 1; angles as random as lecun's
    assert diag["he"][0] > 10 * diag["dual"][0]
    # random columns of length m = 128: mean squared cosine ~ 1/m whatever the scale
    for law in ("he", "lecun", "dual", "xavier"):
        assert cos2[law][0] == pytest.approx(1 / 128, rel=0.3), law
