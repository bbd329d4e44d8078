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


# ----------------------------------------------------------------------------------------------------------
# resuming a study: a tiny objective instead of a training
def _ask_tell(study, n: int, space: dict) -> list[tuple]:
    sets = []
    for _ in range(n):
        trial = study.ask()
        params = tuple(trial._suggest(name, dist) for name, dist in space.items())
        sets.append(params)
        study.tell(trial, float(sum(hash(p) % 97 for p in params)))
    return sets


def test_a_resumed_study_never_reruns_a_parameter_set(tmp_path):
    """Two sessions of one SQLite study, each with a new sampler seeded like the sweeper does
    (seed=42): the first session proposes what TPESampler(42) proposes; the second proposes new
    sets (plain TPESampler(42) starts over and re-runs trials 0 and 1)."""
    from optuna.distributions import CategoricalDistribution, LogUniformDistribution

    from bertlab.utils.optuna_sampler import ResumableTPESampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"lr": LogUniformDistribution(1e-4, 1e-2), "crf": CategoricalDistribution([1, 10, 100, 1000])}
    runs = {}
    for cls in (optuna.samplers.TPESampler, ResumableTPESampler):
        storage = f"sqlite:///{tmp_path / cls.__name__}.db"
        sets = []
        for _ in range(2):
            study = optuna.create_study(
                study_name="s", storage=storage, sampler=cls(seed=42, n_startup_trials=5), load_if_exists=True
            )
            sets += _ask_tell(study, 3, space)
        runs[cls.__name__] = sets
    plain, resumable = runs["TPESampler"], runs["ResumableTPESampler"]
    assert plain[3:5] == plain[0:2]  # the bug: the resumed session starts over
    assert resumable[:3] == plain[:3]  # a new study: exactly TPESampler(seed)
    assert len(set(resumable)) == 6
    assert (
        optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/ResumableTPESampler.db").trials[3].number == 3
    )


def test_a_small_grid_is_covered_without_repeats_then_repeats_with_a_warning(tmp_path, caplog):
    """2 x 3 categorical sets over three sessions of 2 trials: all 6 different; a seventh trial
    has no new set left and says so."""
    from optuna.distributions import CategoricalDistribution

    from bertlab.utils.optuna_sampler import ResumableTPESampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"a": CategoricalDistribution(["x", "y"]), "b": CategoricalDistribution([1, 2, 3])}
    storage = f"sqlite:///{tmp_path}/grid.db"
    sets = []
    for _ in range(3):
        study = optuna.create_study(
            study_name="g",
            storage=storage,
            sampler=ResumableTPESampler(seed=0, n_startup_trials=2),
            load_if_exists=True,
        )
        sets += _ask_tell(study, 2, space)
    assert sorted(sets) == [(a, b) for a in "xy" for b in (1, 2, 3)]
    with caplog.at_level("WARNING", logger="bertlab.utils.optuna_sampler"):
        _ask_tell(study, 1, space)
    assert "repeats the parameters of an earlier trial" in caplog.text


APP = """
import sys
import hydra
from bertlab.utils.hydra_utils import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path=sys.argv.pop(1), config_name="train")
def main(cfg):
    # a tiny objective of the trial's parameters: no training; the job's .hydra/ files written
    # as bertlab.train writes them (Hydra itself does not: hydra.output_subdir is null)
    from hydra.core.hydra_config import HydraConfig

    from bertlab.train import save_hydra_files

    save_hydra_files(cfg, HydraConfig.get().runtime.output_dir)
    return float(cfg.optimizer.lr) * float(cfg.optimizer.lr_multipliers.crf)


main()
"""


def _tiny_study(app: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    cmd = [sys.executable, str(app), str(ROOT / "conf"), "-m", f"{HS}=cws_optuna", "experiment=cws_crf", *overrides]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cws_optuna_resumed_through_the_hydra_sweeper_proposes_new_parameters(tmp_path):
    """conf/hparams_search/cws_optuna.yaml through the real hydra-optuna-sweeper (a tiny
    objective, no training): a second launch on the same SQLite storage continues the study
    (trials 3-5) with three parameter sets none of trials 0-2 had; under debug= the study is
    named after the experiment (cws_crf_optuna, not debug_optuna)."""
    app = tmp_path / "app.py"
    app.write_text(APP, encoding="utf-8")
    db = tmp_path / "study.db"
    common = ["hydra.sweeper.n_trials=3", f"hydra.sweeper.storage=sqlite:///{db}", "debug=default"]
    for i in range(2):
        proc = _tiny_study(app, *common, f"hydra.sweep.dir={tmp_path}/sweep{i}")
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{db}")] == ["cws_crf_optuna"]
    study = optuna.load_study(study_name="cws_crf_optuna", storage=f"sqlite:///{db}")
    sets = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(sets) == 6 and len(set(sets)) == 6, sets
    # each session's job folders hold its trials' overrides (what bertlab.report reads)
    second = [
        yaml.safe_load((tmp_path / "sweep1" / str(j) / ".hydra" / "overrides.yaml").read_text()) for j in range(3)
    ]
    assert [next(o for o in ov if o.startswith("optimizer.lr=")) for ov in second] == [
        f"optimizer.lr={t.params['optimizer.lr']}" for t in study.trials[3:]
    ]
