"""NaN/inf training loss: ``nonfinite_loss=stop`` ends the run naming the step (CLI: exit 2,
one line, status failed), ``nonfinite_loss=skip`` leaves weights and optimizer state exactly
as they were across the skipped batch (AdamW with weight decay: zero gradients would not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from bertlab.callbacks.nonfinite_loss import NonFiniteLossError, NonFiniteLossGuard
from bertlab.train import train
from bertlab.utils.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "experiment=cws_crf",
    "encoder.num_layers=1",
    "encoder.hidden_size=32",
    "encoder.num_attention_heads=2",
    "encoder.intermediate_size=64",
    "data.max_train_chars=3000",
    "data.max_eval_sentences=5",
    "data.batch_size=4",
    "trainer.max_steps=4",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.val_check_interval=1.0",
    "callbacks.rich_progress_bar=null",
    "callbacks.transition_heatmap=null",
    "threads=1",
]
INJECT = "tests.callbacks.test_nonfinite_loss.InjectNonFiniteLoss"


class InjectNonFiniteLoss(pl.Callback):
    """Test-only: the training loss of the batches at global steps ``steps`` becomes ``value``
    (NaN by default); records the weights and optimizer state around each of them."""

    def __init__(self, steps: list[int], value: float = float("nan")):
        self.steps = set(steps)
        self.value = value
        self.before: dict[int, tuple[dict, dict]] = {}
        self.after: dict[int, tuple[dict, dict]] = {}

    def on_fit_start(self, trainer, pl_module):
        original = pl_module.training_step

        def training_step(*args, **kwargs):
            loss = original(*args, **kwargs)
            if pl_module.trainer.global_step in self.steps:
                loss = loss * torch.tensor(self.value)
            return loss

        pl_module.training_step = training_step

    @staticmethod
    def _snapshot(trainer, pl_module):
        params = {k: v.detach().clone() for k, v in pl_module.named_parameters()}
        opt = {
            f"{i}.{k}": v.clone()
            for i, st in trainer.optimizers[0].state.items()
            for k, v in st.items()
            if isinstance(v, torch.Tensor)
        }
        return params, opt

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step in self.steps:
            self.before[trainer.global_step] = self._snapshot(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step - 1  # the optimizer step this batch belonged to
        if step in self.steps:
            self.after[step] = self._snapshot(trainer, pl_module)


def _guard_and_injector(objs):
    cbs = objs["trainer"].callbacks
    # the config imports this module again as tests.callbacks.test_nonfinite_loss: match by name
    return next(c for c in cbs if isinstance(c, NonFiniteLossGuard)), next(
        c for c in cbs if type(c).__name__ == "InjectNonFiniteLoss"
    )


def test_zero_gradients_still_move_adamw_weights_but_no_gradient_does_not():
    """Why ``skip`` removes the gradients instead of zeroing them."""
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([w], lr=0.1, weight_decay=0.01)
    w.grad = torch.ones(3)
    opt.step()
    moved = w.detach().clone()
    w.grad = torch.zeros(3)
    opt.step()
    assert not torch.equal(w.detach(), moved)  # momentum + weight decay
    settled = w.detach().clone()
    w.grad = None
    opt.step()
    assert torch.equal(w.detach(), settled)


def test_skip_leaves_weights_and_adamw_state_untouched_then_training_goes_on(make_cfg):
    cfg = make_cfg(
        [
            *TINY,
            "optimizer=adamw",
            "nonfinite_loss=skip",
            "test=false",
            f"+callbacks.inject._target_={INJECT}",
            "+callbacks.inject.steps=[2]",
        ]
    )
    metrics, objs = train(cfg)
    guard, inject = _guard_and_injector(objs)
    assert guard.skipped == 1 and metrics["nonfinite_loss_skipped"] == 1
    (p0, o0), (p1, o1) = inject.before[2], inject.after[2]
    assert p0.keys() == p1.keys() and o0.keys() == o1.keys() and o0
    for k in p0:
        assert torch.equal(p0[k], p1[k]), f"{k} changed across the skipped batch"
    for k in o0:
        assert torch.equal(o0[k], o1[k]), f"optimizer state {k} changed across the skipped batch"
    # the steps around it trained: the final weights differ from those before the skip, and are finite
    final = dict(objs["model"].named_parameters())
    assert any(not torch.equal(p0[k], final[k].detach()) for k in p0)
    assert all(torch.isfinite(v).all() for v in final.values())
    assert objs["trainer"].global_step == 4
    assert json.loads((Path(cfg.paths.output_dir) / "status.json").read_text())["status"] == "done"


def test_every_run_is_guarded_and_endless_skips_stop(make_cfg):
    """``callbacks=none`` still gets the guard (train adds it); inf counts like NaN; more than
    ``nonfinite_loss_max_skips`` skipped steps in a row stop the run."""
    tiny = [o for o in TINY if not o.startswith("callbacks.")]
    cfg = make_cfg(
        [
            *tiny,
            "callbacks=none",
            "nonfinite_loss=skip",
            "nonfinite_loss_max_skips=2",
            "test=false",
            f"+callbacks.inject._target_={INJECT}",
            "+callbacks.inject.steps=[0,1,2,3]",
            "+callbacks.inject.value=inf",
        ]
    )
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite training loss inf at global step 2 .*3 optimizer steps in a row"
    ):
        train(cfg)
    status = json.loads((Path(cfg.paths.output_dir) / "status.json").read_text())
    assert status["status"] == "failed" and "global step 2" in status["error"]


def test_bad_modes_are_config_errors():
    with pytest.raises(ConfigError, match="config key 'nonfinite_loss': must be one of stop | skip"):
        NonFiniteLossGuard("ignore")
    with pytest.raises(ConfigError, match="nonfinite_loss_max_skips"):
        NonFiniteLossGuard("skip", 0)


@pytest.mark.slow
def test_stop_through_the_cli_names_the_step_and_exits_nonzero(tmp_path):
    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "bertlab.train",
        *TINY,
        f"+callbacks.inject._target_={INJECT}",
        "+callbacks.inject.steps=[2]",
        f"hydra.run.dir={run_dir}",
        f"paths.log_dir={tmp_path}",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    errors = [line for line in res.stderr.splitlines() if line.startswith("bertlab: error:")]
    assert res.returncode == 2, res.stderr[-3000:]
    assert len(errors) == 1 and "non-finite training loss nan at global step 2 (epoch 0, batch 2)" in errors[0], (
        res.stderr[-3000:]
    )
    assert "Traceback" not in res.stderr
    assert not (run_dir / "metrics.json").exists()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "global step 2" in status["error"]
    # nothing was saved after the bad batch: no checkpoint holds NaN weights
    for ckpt in (run_dir / "checkpoints").glob("*.ckpt") if (run_dir / "checkpoints").exists() else []:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
