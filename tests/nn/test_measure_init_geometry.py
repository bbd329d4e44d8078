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


def test_draws_are_kept_and_the_statistic_splits_into_its_diagonal_and_off_diagonal_parts():
    sizes = [16, 64, 256]
    res = _script().measure_draws(sizes, ratio=4, draws=3)
    for stat in ("full", "diag", "offdiag", "cos2"):
        assert all(len(cell) == 3 for cells in res[stat].values() for cell in cells), stat
    # mean((W^T W - I)^2) = diag / n + offdiag * (n - 1) / n, draw by draw
    for law in ("lecun", "dual", "he", "hf"):
        for n, full, diag, off in zip(sizes, res["full"][law], res["diag"][law], res["offdiag"][law]):
            for f, d, o in zip(full, diag, off):
                assert f == pytest.approx(d / n + o * (n - 1) / n, rel=1e-9), (law, n)
    slope = _script().slope
    # tall m = 4n: the statistic falls like 1/n for every law; the diagonal part only for the
    # post's variance 1/m (dual), it stays flat where m * variance != 1 (lecun: ~9, he: ~49)
    for law in ("lecun", "dual", "he"):
        mean_curve = [sum(c) / 3 for c in res["full"][law]]
        assert slope(sizes, mean_curve) == pytest.approx(-1, abs=0.15), law
    flat = [slope(sizes, [sum(c) / 3 for c in res["diag"][law]]) for law in ("lecun", "he")]
    assert all(abs(s) < 0.15 for s in flat), flat
    assert slope(sizes, [sum(c) / 3 for c in res["diag"]["dual"]]) == pytest.approx(-1, abs=0.3)


def test_main_writes_the_per_draw_table_atomically(tmp_path):
    out = tmp_path / "geo"
    assert _script().main(["--out", str(out), "--sizes", "16,32", "--draws", "2", "--seed", "5", "--no-plot"]) == 0
    md = (out / "init_geometry.md").read_text(encoding="utf-8")
    assert "2 draws per cell" in md and "generator seed 5 (square) / 6 (tall" in md
    for shape in ("square", "tall m=4n"):
        for draw in (1, 2):
            assert f"| {shape} | dual | {draw} |" in md
    assert "| square | orthogonal | - | - | - | - |" in md  # rounding-level curves: no slope
    assert [p.name for p in out.iterdir()] == ["init_geometry.md"]  # no temporary file left, no PNG
