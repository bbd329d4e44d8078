"""train(cfg) end to end: fast_dev_run of the experiments, and the main job on a small slice."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bertlab.train import train

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "data.max_train_chars=20000",
    "data.max_eval_sentences=40",
    "callbacks.rich_progress_bar=null",
]


@pytest.mark.parametrize("experiment", ["cws_crf", "cws_softmax"])
def test_fast_dev_run(make_cfg, experiment):
    cfg = make_cfg([f"experiment={experiment}", "debug=fdr", *TINY])
    metrics, objs = train(cfg)
    assert "train/loss" in metrics
    assert objs["model"].head_name == experiment.split("_")[1]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """The main job on a small slice, trained once for the tests below."""
    from tests.conftest import compose_cfg

    out = tmp_path_factory.mktemp("main_job")
    cfg = compose_cfg(
        out,
        [
            "experiment=cws_crf",
            *TINY,
            "encoder.hidden_size=64",
            "encoder.intermediate_size=128",
            "data.max_train_chars=150000",
            "data.max_eval_sentences=null",
            "trainer.val_check_interval=0.5",
            "optimizer.lr=3e-3",
        ],
    )
    metrics, objs = train(cfg)
    return Path(cfg.paths.output_dir), metrics, objs


@pytest.mark.slow
def test_main_job_end_to_end_on_a_small_slice(trained_run):
    out, metrics, objs = trained_run
    saved = json.loads((out / "metrics.json").read_text())
    # a real model beats the all-single-character baseline (PKU test F1 of "every char a word" ~ 0.26)
    assert saved["test"]["f1"] > 0.6
    assert saved["test"]["n_sentences"] == 1945
    pred = (out / "predictions" / "test_segmentation.txt").read_text(encoding="utf-8").split("\n")
    raw = [
        line.rstrip("\r")
        for line in lzma.open(ROOT / "data/cws/pku_sighan2005/pku_test.utf8.xz", "rt", encoding="utf-8")
        .read()
        .split("\n")
    ]
    assert [p.replace("  ", "") for p in pred[:1945]] == [r.replace(" ", "") for r in raw[:1945]]
    assert any("  " in p for p in pred)
    csvs = sorted((out / "transitions").glob("*.csv"))
    assert len(csvs) >= 2 and len(list((out / "transitions").glob("*.png"))) == len(csvs)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert any(p.name.startswith("best") for p in (out / "checkpoints").iterdir())
    # the transitions of the tested (best) checkpoint are kept apart and name its step
    best_ckpt = next(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("best"))
    assert (out / "transitions" / "best.csv").is_file()
    assert best_ckpt == f"best-step{int(saved['transitions/best_step']):07d}.ckpt"
    lr_cols = (out / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "lr-Adam/crf" in lr_cols and "lr-Adam/base" in lr_cols
    assert "time/fit_seconds" in lr_cols.split(",")  # wall clock of every validation (time-to-quality)
    assert {"time/epoch_train_seconds", "time/peak_memory_mb"} <= set(lr_cols.split(","))  # cost per epoch
    assert (out / "vocab.txt").read_text(encoding="utf-8").count("\n") == len(objs["datamodule"].tokenizer)


@pytest.mark.slow
def test_evaluate_reproduces_the_test_metrics_of_the_best_checkpoint(trained_run, make_cfg, tmp_path):
    from bertlab.evaluate import evaluate

    out, metrics, _ = trained_run
    best = metrics["test_checkpoint"]
    cfg = make_cfg([f"ckpt_path={best}", "callbacks.rich_progress_bar=null"], config_name="eval")
    got = evaluate(cfg)
    assert got["test"]["f1"] == pytest.approx(metrics["test"]["f1"], abs=1e-9)
    # the data the checkpoint was scored on is stated, as in a training run's metrics.json
    assert got["data_stats"]["test_features"] == metrics["data_stats"]["test_features"] > 0
    assert (tmp_path / "predictions" / "test_segmentation.txt").read_text(encoding="utf-8") == (
        out / "predictions" / "test_segmentation.txt"
    ).read_text(encoding="utf-8")


@pytest.mark.slow
def test_predict_offsets_point_at_the_right_characters(trained_run):
    from bertlab.predict import predict_texts
    from bertlab.runs import load_run

    out, _, _ = trained_run
    model, dm, _ = load_run(str(out / "checkpoints" / "last.ckpt"))
    texts = ["我爱北京天安门。", "", "ＡＢＣ 和 abc，“引号”" * 30, "鑫"]
    recs = predict_texts(model, dm, texts)
    assert [r["text"] for r in recs] == texts
    for text, rec in zip(texts, recs):
        assert "".join(w["word"] for w in rec["words"]) == "".join(text.split())
        for w in rec["words"]:
            assert text[w["start"] : w["end"]] == w["word"]


def test_bad_input_is_one_line_and_nonzero_exit(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PATH": "/usr/bin:/bin"}
    cmd = [
        sys.executable,
        "-m",
        "bertlab.train",
        "experiment=cws_crf",
        f"paths.log_dir={tmp_path}",
        f"data.test_gold_file={tmp_path}/missing.txt",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert res.returncode == 2
    err = [line for line in res.stderr.splitlines() if line.startswith("bertlab: error:")]
    assert err == [f"bertlab: error: {tmp_path}/missing.txt: file not found"], res.stderr[-2000:]
    res = subprocess.run(
        cmd[:-1] + [f"encoder.pretrained={tmp_path}/nope"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 2 and "no such directory" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=ner_crf"],
        [
            "experiment=ner_crf",
            "data=ner_resume",
            "head=memm",
            "~optimizer.lr_multipliers.crf",
            "+optimizer.lr_multipliers.memm=10",
        ],
    ],
)
def test_fast_dev_run_ner(make_cfg, overrides):
    cfg = make_cfg([*overrides, "debug=fdr", *TINY])
    metrics, objs = train(cfg)
    assert objs["model"].hparams.num_tags == len(objs["datamodule"].labels)
    assert "train/loss" in metrics


@pytest.mark.slow
def test_a_failing_job_of_a_multirun_does_not_stop_the_others(tmp_path):
    """Job 0 has a missing data file: it is recorded as failed (status.json, one stderr line,
    no metrics.json); job 1 still runs and keeps its results; the sweep exits 1; the report
    marks job 0 failed."""
    from bertlab.reporting.multirun import build_report
    from bertlab.utils.run_status import read_status

    env = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    gold = ROOT / "data/cws/pku_sighan2005/pku_test_gold.utf8.xz"
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "bertlab.train",
        "-m",
        "experiment=cws_crf",
        "debug=fdr",
        *TINY,
        "logger=csv",
        f"data.test_gold_file={tmp_path}/missing.txt,{gold}",
        f"hydra.sweep.dir={sweep}",
        f"paths.log_dir={tmp_path}",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=400)
    assert res.returncode == 1, res.stderr[-3000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("bertlab: error:")]
    assert errors[0] == f"bertlab: error: job failed: {sweep}/0: {tmp_path}/missing.txt: file not found", res.stderr[
        -3000:
    ]
    assert "1 job(s) of the multirun failed" in errors[-1] and "Traceback" not in res.stderr
    failed, ok = read_status(sweep / "0"), read_status(sweep / "1")
    assert failed["status"] == "failed" and failed["error"] == f"{tmp_path}/missing.txt: file not found"
    assert not (sweep / "0" / "metrics.json").exists()
    assert ok["status"] == "done" and json.loads((sweep / "1" / "metrics.json").read_text())["test"]
    report = build_report(sweep, metric="train/loss")
    assert [r["status"] for r in report.rows] == ["failed", "ok"]


def test_status_and_metrics_of_a_run_folder(make_cfg, tmp_path, monkeypatch):
    """train() writes status.json running -> done, metrics.json last; a run that fails once it owns
    its folder says failed with the one-line reason and leaves no metrics.json (even one from an
    earlier attempt); a start refused before that (a missing data file) writes nothing there."""
    from tests.conftest import compose_cfg

    import bertlab.train as train_mod
    from bertlab.utils.errors import DataError
    from bertlab.utils.run_status import is_finished, read_status

    cfg = make_cfg(["experiment=cws_crf", "debug=fdr", *TINY])
    train(cfg)
    assert read_status(tmp_path)["status"] == "done" and is_finished(tmp_path)
    other = tmp_path / "other"  # a folder with a stale metrics.json of an earlier attempt (no run in it)
    other.mkdir()
    (other / "metrics.json").write_text("{}", encoding="utf-8")
    cfg = compose_cfg(other, ["experiment=cws_crf", "debug=fdr", *TINY, f"data.test_gold_file={tmp_path}/missing.txt"])
    with pytest.raises(DataError):
        train(cfg)  # refused before the run takes the folder: nothing written there (issue 27 row 27f)
    assert sorted(p.name for p in other.iterdir()) == ["metrics.json"] and not is_finished(other)

    def fails(*args, **kwargs):
        raise DataError(f"{tmp_path}/missing.txt", None, "file not found")

    monkeypatch.setattr(train_mod, "_train", fails)  # a failure once the run owns its folder
    with pytest.raises(DataError):
        train(compose_cfg(other, ["experiment=cws_crf", "debug=fdr", *TINY]))
    status = read_status(other)
    assert status["status"] == "failed" and status["error"] == f"{tmp_path}/missing.txt: file not found"
    assert not (other / "metrics.json").exists() and not is_finished(other)


@pytest.mark.slow
def test_a_relaunched_multirun_with_skip_done_trains_nothing_again(tmp_path):
    """A 2-job multirun, then the same command on the same sweep dir with skip_done=true: both
    jobs return their stored metrics (no training: metrics.json and the checkpoints untouched)
    and the command ends with the one summary line naming the report command."""
    env = {
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "PATH": "/usr/bin:/bin",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "bertlab.train",
        "-m",
        "experiment=cws_crf",
        "debug=fdr",
        *TINY,
        "logger=csv",
        "seed=1,2",
        f"hydra.sweep.dir={sweep}",
        f"paths.log_dir={tmp_path}",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=400)
    assert first.returncode == 0, first.stderr[-3000:]
    line = f"bertlab: multirun: 2 done / 0 failed in {sweep}; report: python -m bertlab.report {sweep}"
    assert first.stdout.strip().splitlines()[-1] == line
    stamps = {p: p.stat().st_mtime_ns for p in sweep.rglob("metrics.json")}
    again = subprocess.run([*cmd, "skip_done=true"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("is done: not trained again") == 2
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("metrics.json")} == stamps and len(stamps) == 2
    assert again.stdout.strip().splitlines()[-1] == line
