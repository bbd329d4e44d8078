"""Multirun report on a fabricated Hydra multirun folder (3 jobs, one failed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bertlab.report import main
from bertlab.reporting.multirun import build_report, render_markdown

CSV_HEADER = "epoch,step,train/loss,val/f1,val/precision\n"


def _job(root: Path, num: int, crf: str, history: list[tuple], metrics: dict | None) -> None:
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(
        f"- experiment=cws_crf\n- optimizer.lr_multipliers.crf={crf}\n", encoding="utf-8"
    )
    (job / ".hydra" / "config.yaml").write_text("seed: 1\n", encoding="utf-8")
    (job / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {num}\n", encoding="utf-8")
    (job / "csv").mkdir()
    lines = [CSV_HEADER] + [",".join("" if v is None else str(v) for v in row) + "\n" for row in history]
    (job / "csv" / "metrics.csv").write_text("".join(lines), encoding="utf-8")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")


@pytest.fixture
def multirun(tmp_path: Path) -> Path:
    root = tmp_path / "multirun"
    root.mkdir()
    (root / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task:\n    - experiment=cws_crf\n    - optimizer.lr_multipliers.crf=1,10,100\n",
        encoding="utf-8",
    )
    # job 0: f1 0.50 -> 0.70 -> 0.65 (best in epoch 1, final 0.65)
    _job(
        root,
        0,
        "1",
        [
            (0, 9, 1.2, None, None),
            (0, 9, None, 0.5, 0.6),
            (1, 19, 0.8, None, None),
            (1, 19, None, 0.7, 0.72),
            (2, 29, None, 0.65, 0.7),
        ],
        {
            "val/f1": 0.65,
            "val/precision": 0.7,
            "train/loss": 0.8,
            "test": {"f1": 0.61, "precision": 0.6, "recall": 0.62, "n_gold": 10},
            "val_last": {"f1": 0.65},
        },
    )
    # job 1: failed in epoch 1 (partial CSV, no metrics.json)
    _job(root, 1, "10", [(0, 9, None, 0.55, 0.5), (1, 12, 0.9, None, None)], None)
    # job 2: f1 0.60 -> 0.80
    _job(
        root,
        2,
        "100",
        [(0, 9, None, 0.6, 0.6), (1, 19, None, 0.8, 0.81)],
        {"val/f1": 0.8, "test": {"f1": 0.77, "precision": 0.75, "recall": 0.79}},
    )
    return root


def test_build_report_rows(multirun):
    report = build_report(multirun)
    assert report.swept_keys == ["optimizer.lr_multipliers.crf"]
    assert report.common == {"experiment": "cws_crf"}
    assert report.mode == "max"
    assert report.test_keys == ["f1", "precision", "recall"]  # counts (n_*) left out
    r0, r1, r2 = report.rows
    assert (r0["status"], r1["status"], r2["status"]) == ("ok", "failed", "ok")
    assert r0["optimizer.lr_multipliers.crf"] == "1"
    assert (r0["final"], r0["best"], r0["best_epoch"], r0["epoch1"]) == (0.65, 0.7, 1, 0.5)
    assert (r1["final"], r1["best"], r1["best_epoch"], r1["epoch1"]) == (None, 0.55, 0, 0.55)
    assert r1["test/f1"] is None
    assert (r2["final"], r2["best"], r2["epoch1"], r2["test/f1"]) == (0.8, 0.8, 0.6, 0.77)


def test_loss_metric_is_minimised(multirun):
    report = build_report(multirun, metric="train/loss")
    assert report.mode == "min"
    assert (report.rows[0]["final"], report.rows[0]["best"], report.rows[0]["epoch1"]) == (0.8, 0.8, 1.2)
    assert build_report(multirun, metric="test/f1").rows[2]["final"] == 0.77  # nested lookup


def test_cli_writes_markdown_and_png(multirun, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(multirun), "--out", str(out)]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| job | optimizer.lr_multipliers.crf | status | final val/f1 | best val/f1 |" in md
    assert "| 0 | 1 | ok | 0.6500 | 0.7000 | 1 | 0.5000 | 0.6100 | 0.6000 | 0.6200 |" in md
    assert "| 1 | 10 | failed | - | 0.5500 | 0 | 0.5500 | - | - | - |" in md
    assert "job 1: no metrics.json" in md
    assert "Best `val/f1`: 0.8000 (job 2" in md
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out
    # default output folder: the multirun folder itself
    assert main([str(multirun)]) == 0
    assert (multirun / "report.md").is_file() and (multirun / "report.png").is_file()


def test_not_a_multirun_folder_exits_2(tmp_path, multirun, capsys):
    (tmp_path / "plain").mkdir()
    assert main([str(tmp_path / "plain")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a Hydra multirun folder" in err[0]
    assert main([str(tmp_path / "missing")]) == 2
    assert main([str(multirun), "--metric", "val/f2"]) == 2
    assert "val/f1" in capsys.readouterr().err  # lists the available metrics


def test_module_entry_point(multirun, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bertlab.report", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("bertlab: error:") and len(proc.stderr.strip().splitlines()) == 1


def test_markdown_without_swept_keys(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    (root / "multirun.yaml").write_text("hydra: {}\n", encoding="utf-8")
    _job(root, 0, "1", [(0, 9, None, 0.5, 0.5)], {"val/f1": 0.5})
    report = build_report(root)
    assert report.swept_keys == ["experiment", "optimizer.lr_multipliers.crf"]  # one job: all keys
    assert "| 0 | cws_crf | 1 | ok | 0.5000 |" in render_markdown(report)


def test_best_line_ignores_failed_jobs(multirun):
    report = build_report(multirun)
    report.rows[1]["best"] = 0.99  # a crashed job's partial history must not be "the best job"
    assert "Best `val/f1`: 0.8000 (job 2" in render_markdown(report)


def test_failed_job_shows_its_recorded_reason(multirun):
    (multirun / "1" / "status.json").write_text(
        json.dumps({"status": "failed", "error": "data/x.txt:3: empty word"}), encoding="utf-8"
    )
    md = render_markdown(build_report(multirun))
    assert "- job 1: no metrics.json (the job did not finish): data/x.txt:3: empty word" in md


def _optuna_job(root: Path, num: int, lr: str, seed: int, f1s: list[float], done: bool) -> None:
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(
        f"- optimizer.lr={lr}\n- seed={seed}\n- hparams_search=cws_optuna\n- experiment=cws_crf\n", encoding="utf-8"
    )
    (job / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  sweeper:\n    params:\n      optimizer.lr: tag(log, interval(1e-4, 1e-2))\n      seed: choice(1, 2)\n",
        encoding="utf-8",
    )
    (job / "csv").mkdir()
    rows = [f"{e},{10 * e + 9},,{f1},\n" for e, f1 in enumerate(f1s)]
    (job / "csv" / "metrics.csv").write_text(CSV_HEADER + "".join(rows), encoding="utf-8")
    if done:
        (job / "metrics.json").write_text(json.dumps({"val/f1": f1s[-1], "test": {"f1": f1s[-1] - 0.1}}))


def test_an_optuna_sweep_folder_is_reported_with_groups_over_seeds_and_their_curves(tmp_path, capsys):
    """An Optuna sweep folder (no multirun.yaml): the jobs' overrides give the table; jobs alike
    but for their seed form a group with n, seeds and mean ± std; every group's learning curve
    is drawn (report_curve.png); Optuna's best trial is stated."""
    root = tmp_path / "study"
    _optuna_job(root, 0, "0.001", 1, [0.5, 0.7], True)
    _optuna_job(root, 1, "0.001", 2, [0.6, 0.9], True)
    _optuna_job(root, 2, "0.01", 1, [0.2, 0.4], True)
    _optuna_job(root, 3, "0.01", 2, [0.3], False)  # killed: no metrics.json
    (root / "optimization_results.yaml").write_text(
        "name: optuna\nbest_params:\n  optimizer.lr: 0.001\n  seed: 2\nbest_value: 0.9\n", encoding="utf-8"
    )
    report = build_report(root)
    assert report.swept_keys == ["optimizer.lr", "seed"]
    assert report.sweep == ["optimizer.lr=tag(log, interval(1e-4, 1e-2))", "seed=choice(1, 2)"]
    g1, g2 = report.groups
    assert (g1["group"], g1["n"], g1["failed"], g1["seeds"]) == ("optimizer.lr=0.001", 2, 0, ["1", "2"])
    assert g1["final"] == [0.7, 0.9] and g2["n"] == 1 and g2["failed"] == 1
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out)]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.startswith(f"# Optuna sweep report: `{root}`")
    assert "Optuna's best trial (optimization_results.yaml): 0.9000 (optimizer.lr=0.001, seed=2)." in md
    assert (
        "| optimizer.lr=0.001 | 2 | 1, 2 | 0.8000 ± 0.1414 | 0.8000 ± 0.1414 | 0.5500 ± 0.0707 | 0.7000 ± 0.1414 |"
        in md
    )
    assert "| optimizer.lr=0.01 | 1 (1 failed) | 1 | 0.4000 | 0.4000 | 0.2000 | 0.3000 |" in md
    assert (out / "report_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "report_curve.png" in md and md in capsys.readouterr().out


def test_a_plain_multirun_without_seeds_has_no_group_table(multirun):
    report = build_report(multirun)
    assert [g["group"] for g in report.groups] == [
        "optimizer.lr_multipliers.crf=1",
        "optimizer.lr_multipliers.crf=10",
        "optimizer.lr_multipliers.crf=100",
    ]
    assert "Groups (jobs alike" not in render_markdown(report)
