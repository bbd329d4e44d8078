"""trainer=ddp_cpu for real: 2 gloo processes from the CLI give the metrics of a 1-process
run (every rank sees every batch until the bucket sampler shards), and the guard against
Lightning re-running a local multirun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bertlab.utils.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "experiment=cws_crf",
    "encoder.num_layers=1", "encoder.hidden_size=32", "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64", "callbacks.rich_progress_bar=null",
    "data.max_train_chars=5000", "data.max_eval_sentences=21",
    "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
    "trainer.val_check_interval=1.0", "trainer.deterministic=true",
]


def _run(out: Path, *extra: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    proc = subprocess.run([sys.executable, "-m", "bertlab.train", *TINY, *extra, f"hydra.run.dir={out}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_two_process_cpu_ddp_matches_one_process(tmp_path):
    one = _run(tmp_path / "one", "trainer=cpu")
    two = _run(tmp_path / "two", "trainer=ddp_cpu")
    assert set(two) == set(one)
    assert set(two["test"]) == set(one["test"]) and set(two["val_last"]) == set(one["val_last"])
    # counts are exact (no duplicated samples), F1 equal up to float noise of the all-reduce
    for split in ("val_last", "test"):
        for k in ("n_sentences", "n_gold", "n_pred", "n_correct"):
            assert two[split][k] == one[split][k], (split, k)
        assert two[split]["f1"] == pytest.approx(one[split]["f1"], abs=1e-6)
    assert two["train/loss"] == pytest.approx(one["train/loss"], rel=1e-4)
    # one run folder, written by rank 0 (rank 1 re-ran with hydra.run.dir pinned to it)
    assert (tmp_path / "two" / "checkpoints" / "last.ckpt").is_file()


def test_local_multirun_with_relaunching_ddp_stops_with_a_clear_message(make_cfg, monkeypatch):
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from bertlab.utils.distributed import check_ddp_launch

    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    cfg = make_cfg(["trainer=ddp_cpu"])
    check_ddp_launch(cfg)  # a single run: fine
    with pytest.raises(ConfigError, match="slurm_ddp"):
        check_ddp_launch(cfg, multirun=True)
    monkeypatch.setenv("SLURM_NTASKS", "2")
    check_ddp_launch(cfg, multirun=True)  # SLURM starts the processes: fine
    monkeypatch.delenv("SLURM_NTASKS")
    with open_dict(cfg):
        cfg.trainer.strategy = "ddp_spawn"
    check_ddp_launch(cfg, multirun=True)  # spawned workers: no re-run of argv
    with open_dict(cfg):
        cfg.trainer.strategy = "ddp"
        cfg.trainer.devices = 1
    check_ddp_launch(cfg, multirun=True)  # one process: nothing is re-launched
