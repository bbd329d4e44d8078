"""hparams_search=cws_optuna for real: hydra-optuna-sweeper 1.3.0 + optuna 2.10.1 run a
3-trial study over lr and the CRF multiplier on a tiny config, with an SQLite study
storage (the SQLAlchemy<2 pin), and the returned value is each job's val/f1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[1]
# `hparams_search: null` in conf/train.yaml's defaults makes it a plain group override
HS = "hparams_search" if "hparams_search" in (ROOT / "conf" / "train.yaml").read_text() else "+hparams_search"
TINY = [
    "experiment=cws_crf",
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "callbacks.rich_progress_bar=null",
    "data.max_train_chars=5000",
    "data.max_eval_sentences=20",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.val_check_interval=1.0",
    "test=false",
]


@pytest.mark.slow
def test_three_trial_optuna_study_over_lr_and_crf_multiplier(tmp_path):
    sweep = tmp_path / "study"
    db = tmp_path / "study.db"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bertlab.train",
            "-m",
            f"{HS}=cws_optuna",
            *TINY,
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.n_startup_trials=2",
            f"hydra.sweeper.storage=sqlite:///{db}",
            "hydra.sweeper.study_name=t3",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    f1s, params = [], []
    for job in range(3):
        out = sweep / str(job)
        metrics = json.loads((out / "metrics.json").read_text())
        cfg = yaml.safe_load((out / ".hydra" / "config.yaml").read_text())
        lr, mult = cfg["optimizer"]["lr"], cfg["optimizer"]["lr_multipliers"]["crf"]
        assert 1e-4 <= lr <= 1e-2 and mult in (1, 10, 100, 1000)
        f1s.append(metrics["val/f1"])
        params.append((lr, mult))
    assert len(set(params)) == 3  # three different trials

    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    assert results["best_value"] == pytest.approx(max(f1s), abs=1e-6)
    best = results["best_params"]
    assert (best["optimizer.lr"], best["optimizer.lr_multipliers.crf"]) == params[f1s.index(max(f1s))]

    # the study persisted in SQLite has the same three values
    study = optuna.load_study(study_name="t3", storage=f"sqlite:///{db}")
    assert len(study.trials) == 3
    assert [t.value for t in study.trials] == pytest.approx(f1s, abs=1e-6)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
