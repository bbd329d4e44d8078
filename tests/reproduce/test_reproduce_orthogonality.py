"""python -m bertlab.reproduce orthogonality: the table of a FABRICATED sweep (made-up numbers;
this tests the arms, the kernel-statistic parts read from metrics.json and the paired angle
deltas)."""

import json
from pathlib import Path

from bertlab.reproduce.__main__ import main


def _job(sweep: Path, num: int, kind: str, weight, seed: int, acc: float, filter_cos2: float) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    orth = f"  orthogonality:\n    kind: {kind}\n" + (f"    weight: {weight}\n" if weight else "    weight: 0\n")
    (job / ".hydra" / "config.yaml").write_text(f"seed: {seed}\nmodel:\n{orth}")
    (job / "csv").mkdir()
    (job / "csv" / "metrics.csv").write_text(
        f"epoch,step,val/acc,geometry/gram_dev_mean\n0,10,{acc - 0.1},\n0,10,,0.004\n1,20,{acc},\n"
    )
    metrics = {
        "test": {"acc": acc},
        "geometry/final_gram_diag_mean": 0.5,
        "geometry/final_gram_offdiag_cos2_mean": filter_cos2 / 2,
        "geometry/init_filter_cos2_mean": 0.004,
        "geometry/final_filter_cos2_mean": filter_cos2,
    }
    (job / "metrics.json").write_text(json.dumps(metrics))


def test_kernel_parts_and_paired_angle_deltas(tmp_path):
    root = tmp_path / "orth"
    specs = [("none", None, 0.80, 0.010), ("som", "1e-8", 0.81, 0.006), ("biggan", "1e-3", 0.82, 0.012)]
    for i, (kind, weight, acc, cos2) in enumerate(specs):
        sweep = root / str(i)
        sweep.mkdir(parents=True)
        (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: []\n")
        for seed in (1, 2):
            _job(sweep, seed - 1, kind, weight, seed, acc + 0.01 * seed, cos2 + 0.001 * seed)
    out = tmp_path / "orth.md"
    assert main(["orthogonality", "--multirun", str(root), "--out", str(out)]) == 1  # som 1e-7, soft: no run
    md = out.read_text(encoding="utf-8")
    head = [c.strip() for c in next(line for line in md.splitlines() if line.startswith("| arm |")).split("|")[1:-1]]
    som = dict(
        zip(
            head,
            (
                c.strip()
                for c in next(x for x in md.splitlines() if x.startswith("| som (weight 1e-08) |")).split("|")[1:-1]
            ),
        )
    )
    assert som["runs"] == "2"
    assert som["kernel mean((WᵀW-I)²) at end"] == "4.00e-03 ± 0.00e+00"
    assert som["diagonal part mean((diag G-1)²) at end"] == "5.00e-01 ± 0.00e+00"
    assert som["filter (row) mean cos² at step 0"] == "4.00e-03 ± 0.00e+00"
    assert som["filter (row) mean cos² at end"] == "7.50e-03 ± 7.07e-04"
    # SOM moved the filter angles by -0.004 on both seeds against the unregularised run
    delta = som["Δ filter cos² vs none, same seed"]
    assert delta.startswith("-4.00e-03 ± ") and delta.endswith("n 2: holds)")
    assert som["Δ off-diagonal cos² vs none, same seed"].startswith("-2.00e-03")
    assert som["Δ test acc vs none, same seed (pp)"].startswith("+1.00")
    biggan = next(x for x in md.splitlines() if x.startswith("| biggan (weight 0.001) |"))
    assert "| +2.00e-03 ± " in biggan
