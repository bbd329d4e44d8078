"""Arms x seeds tables (reporting/seed_sweep.py, run by ``python -m bertlab.reproduce``) on fabricated multiruns: the orthogonality
report's sub-sweeps, a failed job, means and stds computed by hand."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from bertlab.reporting.seed_sweep import Column, load_jobs, mean_std, render
from bertlab.utils.errors import DataError

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str):
    """``python -m bertlab.reproduce <name> ...`` as ``main(argv)``."""
    from bertlab.reproduce.__main__ import main

    return SimpleNamespace(main=lambda argv: main([name, *argv]))


def _job(
    sweep: Path,
    num: int,
    kind: str,
    weight: str,
    seed: int,
    accs: list[float],
    test: float | None,
    gram: float,
    **extra,
) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(
        f"- model.orthogonality.kind={kind}\n- seed={seed}\n", encoding="utf-8"
    )
    (job / ".hydra" / "config.yaml").write_text(
        f"seed: {seed}\nmodel:\n  orthogonality:\n    kind: {kind}\n    weight: {weight}\n", encoding="utf-8"
    )
    rows = ["epoch,step,geometry/gram_dev_mean,train/epoch_seconds,val/acc"]
    for epoch, acc in enumerate(accs):
        rows += [
            f"{epoch},{epoch * 10 + 5},{gram * 2},,",
            f"{epoch},{epoch * 10 + 9},{gram},{10.0 + epoch},",
            f"{epoch},{epoch * 10 + 9},,,{acc}",
        ]
    (job / "csv").mkdir()
    (job / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    if test is not None:
        geometry = {
            "geometry/final_gram_diag_mean": gram / 2,
            "geometry/final_gram_offdiag_cos2_mean": gram / 4,
            "geometry/init_filter_cos2_mean": 1e-3,
            "geometry/final_filter_cos2_mean": gram / 8,
        }
        (job / "metrics.json").write_text(
            json.dumps({"val/acc": accs[-1], "test": {"acc": test, **extra}, **geometry}), encoding="utf-8"
        )


def _sweep(root: Path, i: int) -> Path:
    sweep = root / str(i)
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: []\n", encoding="utf-8")
    return sweep


def test_mean_std_by_hand():
    assert mean_std([0.5, 0.7], scale=100.0) == "60.00 ± 14.14"
    assert mean_std([0.25, None]) == "0.25" and mean_std([None]) == "-"
    assert mean_std([1e-3, 3e-3], fmt=".1e") == "2.0e-03 ± 1.4e-03"
    assert mean_std([-0.01, 0.03], scale=100.0, fmt="+.2f") == "+1.00 ± 2.83"


def test_orthogonality_report_over_sub_sweeps(tmp_path):
    mod = _script("orthogonality")
    root = tmp_path / "orth"
    none = _sweep(root, 0)
    _job(none, 0, "none", "1e-08", 1, [0.60, 0.70, 0.65], 0.66, 3e-3)
    _job(none, 1, "none", "1e-08", 2, [0.62, 0.64, 0.80], 0.78, 5e-3)
    som = _sweep(root, 1)
    _job(som, 0, "som", "1e-07", 1, [0.50, 0.75, 0.70], 0.72, 1e-3)
    _job(som, 1, "som", "1e-07", 2, [0.55, 0.60], None, 1e-3)  # killed: no metrics.json
    out = tmp_path / "report.md"
    assert mod.main(["--multirun", str(root), "--out", str(out)]) == 1  # one job failed
    md = out.read_text(encoding="utf-8")
    lines = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    none_cells = [c.strip() for c in lines["none"].split("|")[2:-1]]
    # 2 runs; epoch-1 (0.60, 0.62), best (0.70, 0.80), test (0.66, 0.78), gram (3e-3, 5e-3), s/epoch 11, 11;
    # diagonal part gram/2, off-diagonal cos² gram/4, filter cos² 1e-3 at step 0 and gram/8 at the end
    # no predictions file in these fabricated runs: the unseen-text accuracy is "-"
    itself = "+0.00e+00 ± 0.00e+00 (SE 0.00e+00, n 2: within the seed spread)"
    assert none_cells == [
        "2",
        "61.00 ± 1.41",
        "75.00 ± 7.07",
        "72.00 ± 8.49",
        "+0.00 ± 0.00 (SE 0.00, n 2: within the seed spread)",  # the baseline paired with itself
        "-",
        "4.00e-03 ± 1.41e-03",
        "2.00e-03 ± 7.07e-04",
        "1.00e-03 ± 3.54e-04",
        itself,
        "1.00e-03 ± 0.00e+00",
        "5.00e-04 ± 1.77e-04",
        itself,
        "11.0 ± 0.0",
    ]
    som_cells = [c.strip() for c in lines["som (weight 1e-07)"].split("|")[2:-1]]
    # the failed run is left out of the means; seed 1 paired with none's seed 1: 0.72 - 0.66
    assert som_cells[:5] == ["1", "50.00", "75.00", "72.00", "+6.00 (1 seed: no verdict)"]
    # seed 1: som's off-diagonal cos² 1e-3/4 against none's 3e-3/4
    assert som_cells[9] == "-5.00e-04 (1 seed: no verdict)"
    assert "| 1/1 | som (weight 1e-07) | 2 | 55.00 | 60.00 | - | - | - |" in md and "failed: no metrics.json" in md
    assert lines["soft (weight 0.0001)"].split("|")[2].strip() == "0"  # an arm with no run still gets its row
    assert [j.name for j in load_jobs(root)] == ["0", "1", "0", "1"]


def test_sweep_folder_is_named_relative_to_the_working_directory(tmp_path, monkeypatch):
    root = tmp_path / "logs" / "orth"
    _job(_sweep(root, 0), 0, "none", "1e-08", 1, [0.60], 0.66, 3e-3)
    monkeypatch.chdir(tmp_path)
    _script("orthogonality").main(["--multirun", str(root), "--out", str(tmp_path / "r.md")])
    assert "Sweep: `logs/orth`" in (tmp_path / "r.md").read_text(encoding="utf-8")


def test_load_jobs_names_a_folder_without_multiruns(tmp_path):
    with pytest.raises(DataError, match="multirun.yaml"):
        load_jobs(tmp_path)


def test_render_per_run_rows_keep_order_and_format():
    rows = [
        {"job": "0", "arm": "a", "seed": 1, "x": 0.5, "failed": None},
        {"job": "1", "arm": "b", "seed": 1, "x": None, "failed": "boom"},
    ]
    md = render(rows, [Column("x (%)", "x", 100.0)], title="T", source="s", arms=["a", "b"])
    assert "| a | 1 | 50.00 |" in md and "| b | 0 | - |" in md and "| 1 | b | 1 | - | failed: boom |" in md


def test_pretrain_report_rows(tmp_path):
    mod = _script("pretrain")
    sweep = _sweep(tmp_path, 0)
    for num, (pretrained, seed, f1s, test) in enumerate(
        [
            ("null", 1, [0.79, 0.82], 0.826),
            ("/x/bert_small", 1, [0.80, 0.83], 0.834),
            ("/x/bert_small", 2, [0.81, 0.815], 0.828),
        ]
    ):
        job = sweep / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "config.yaml").write_text(
            f"seed: {seed}\nencoder:\n  pretrained: {pretrained}\n", encoding="utf-8"
        )
        (job / "csv").mkdir()
        rows = ["epoch,step,val/f1"] + [f"0,{149 + 150 * i},{f}" for i, f in enumerate(f1s)] + ["0,320,"]
        (job / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        (job / "metrics.json").write_text(json.dumps({"test": {"f1": test, "oov_recall": 0.6}}), encoding="utf-8")
    out = tmp_path / "p.md"
    assert mod.main(["--multirun", str(sweep), "--out", str(out)]) == 0
    md = out.read_text(encoding="utf-8")
    assert "| from scratch | 1 | 79.00 | 82.00 | 320 | 82.60 | +0.00 | 60.00 |" in md
    # seed 1 paired with scratch seed 1 (+0.8 pp); seed 2 has no scratch run to pair with
    assert (
        "| pretrained (bert_small) | 2 | 80.50 ± 0.71 | 82.25 ± 1.06 | 320 ± 0 | 83.10 ± 0.42 | +0.80 (1 seed: no verdict) | 60.00 ± 0.00 |"
        in md
    )


def test_unseen_accuracy_comes_from_metrics_or_the_saved_predictions(tmp_path):
    from bertlab.reporting.multirun import load_multirun
    from bertlab.reporting.seed_sweep import unseen_test_acc

    sweep = _sweep(tmp_path, 0)
    _job(sweep, 0, "none", "0", 1, [0.6], 0.7, 1e-3, acc_unseen=0.55)
    _job(sweep, 1, "none", "0", 2, [0.6], 0.7, 1e-3)
    zip_path = ROOT / "data" / "sentiment" / "sentiment.zip"
    with open(sweep / "1" / ".hydra" / "config.yaml", "a", encoding="utf-8") as fh:
        fh.write("data:\n  path: ${paths.data_dir}/sentiment/sentiment.zip\n")
    from bertlab.data.sentiment import read_sentiment

    train = {t for t, _ in read_sentiment(str(zip_path), "train")}
    rows = read_sentiment(str(zip_path), "test")[:50]
    (sweep / "1" / "predictions").mkdir()
    # right on every text not in train, wrong on the others: the unseen accuracy is 1
    (sweep / "1" / "predictions" / "test_labels.tsv").write_text(
        "".join(f"{t}\t{g if t not in train else 1 - g}\t{g}\n" for t, g in rows), encoding="utf-8"
    )
    jobs = load_multirun(sweep)[1]
    assert unseen_test_acc(jobs[0]) == 0.55 and unseen_test_acc(jobs[1]) == 1.0


def test_render_lists_given_arms_first_then_any_other():
    rows = [
        {"job": "0", "arm": "extra", "seed": 1, "x": 0.1, "failed": None},
        {"job": "1", "arm": "a", "seed": 1, "x": 0.5, "failed": None},
    ]
    md = render(rows, [Column("x", "x")], title="T", source="s", arms=["a", "b"])
    arm_rows = [line.split("|")[1].strip() for line in md.split("Per run")[0].splitlines() if line.startswith("| ")][1:]
    assert arm_rows == ["a", "b", "extra"]


def test_runs_sort_by_arm_order_then_numeric_seed(tmp_path):
    mod = _script("orthogonality")
    root = tmp_path / "orth"
    som = _sweep(root, 0)
    for num, seed in enumerate([10, 2]):
        _job(som, num, "som", "1e-08", seed, [0.6], 0.6, 1e-3)
    none = _sweep(root, 1)
    _job(none, 0, "none", "0", 1, [0.6], 0.6, 1e-3)
    out = tmp_path / "r.md"
    assert mod.main(["--multirun", str(root), "--out", str(out)]) == 1  # soft / biggan have no run
    runs = [
        line.split("|")[1:4]
        for line in out.read_text(encoding="utf-8").split("Per run")[1].splitlines()
        if line.startswith("| ") and not line.startswith("| job") and "---" not in line
    ]
    assert [(j.strip(), s.strip()) for j, _, s in runs] == [("1/0", "1"), ("0/1", "2"), ("0/0", "10")]
    assert mod.main(["--seeds"]) == 2


def test_paired_deltas_subtract_the_baseline_run_of_the_same_seed():
    from bertlab.reporting.seed_sweep import add_paired_deltas

    rows = [
        {"arm": "none", "seed": 1, "test": 0.80},
        {"arm": "none", "seed": 2, "test": 0.70},
        {"arm": "som", "seed": 1, "test": 0.83},
        {"arm": "som", "seed": 2, "test": 0.69},
        {"arm": "som", "seed": 3, "test": 0.90},
        {"arm": "som", "seed": 2, "test": None, "failed": "x"},
    ]
    add_paired_deltas(rows, "none", "test")
    assert [r["delta_test"] for r in rows[:4]] == [0.0, 0.0, pytest.approx(0.03), pytest.approx(-0.01)]
    assert rows[4]["delta_test"] is None and rows[5]["delta_test"] is None  # no seed-3 baseline; failed run


def test_paired_verdict_holds_only_beyond_two_standard_errors():
    from bertlab.reporting.seed_sweep import paired_verdict

    # mean 1, std 0.1, n 3: SE 0.0577 -> holds
    assert paired_verdict([0.9, 1.0, 1.1]).endswith("n 3: holds")
    # the ALBERT case of docs/results.md: +0.90 / +1.56 / -0.28 -> mean 0.73, SE 0.54: within
    assert paired_verdict([0.90, 1.56, -0.28]) == "SE 0.54, n 3: within the seed spread"
    assert paired_verdict([0.5]) == "1 seed: no verdict" and paired_verdict([None]) == "-"


def test_plot_curves_groups_runs_by_arm_and_seed_and_skips_failed_ones(tmp_path, monkeypatch):
    """The learning-curve PNG of ``summarise(curve=...)``: x = epoch + 1, one series per (arm, seed)
    of the table rows, a failed run and a run without the metric left out, None when nothing
    logged it."""
    import bertlab.reporting.plots as plots
    from bertlab.reporting import seed_sweep as ss

    def job(name, history):
        return SimpleNamespace(name=name, history=history)

    jobs = [
        job("0", [{"epoch": 0, "val/f1": 0.1}, {"epoch": 0, "train/loss": 1.0}, {"epoch": 1, "val/f1": 0.3}]),
        job("1", [{"epoch": 0, "val/f1": 0.2}, {"epoch": 1, "val/f1": 0.5}, {"epoch": 2, "val/f1": 0.6}]),
        job("2", [{"epoch": 0, "val/f1": 0.9}]),
        job("3", [{"epoch": 0, "train/loss": 1.0}]),
    ]
    rows = [
        {"arm": "shared", "seed": 1},
        {"arm": "unshared", "seed": 1},
        {"arm": "unshared", "seed": 2, "failed": "no metrics.json"},
        {"arm": "shared", "seed": 2},
    ]
    seen = {}
    real = plots.arm_curves_png

    def spy(curves, path, **kw):
        seen["curves"] = curves
        return real(curves, path, **kw)

    monkeypatch.setattr(plots, "arm_curves_png", spy)
    png = ss.plot_curves(jobs, rows, tmp_path / "table.md", "val/f1", "validation F1", arms=["shared", "unshared"])
    assert png == tmp_path / "table_curve.png" and png.read_bytes()[:4] == b"\x89PNG"
    assert seen["curves"] == {"shared": {"1": [(1, 0.1), (2, 0.3)]}, "unshared": {"1": [(1, 0.2), (2, 0.5), (3, 0.6)]}}
    assert ss.plot_curves(jobs[3:], rows[3:], tmp_path / "none.md", "val/f1", "F1") is None
    assert not (tmp_path / "none_curve.png").exists()


def test_arm_curves_png_means_only_the_epochs_every_seed_reached(tmp_path):
    from bertlab.reporting.plots import arm_curves_png

    fig = arm_curves_png(
        {"a": {"1": [(1, 0.0), (2, 1.0), (3, 2.0)], "2": [(1, 1.0), (2, 3.0)]}}, str(tmp_path / "c.png")
    )
    mean = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("a (mean")]
    assert len(mean) == 1 and list(mean[0].get_xdata()) == [1, 2] and list(mean[0].get_ydata()) == [0.5, 2.0]
    assert (tmp_path / "c.png").stat().st_size > 0
