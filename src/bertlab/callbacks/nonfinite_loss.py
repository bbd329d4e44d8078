"""Never train on a NaN/inf loss: stop the run naming the step, or skip that optimizer step.

Every run (every task) has :class:`NonFiniteLossGuard`: conf/callbacks/default.yaml and
none.yaml declare it (``callbacks.nonfinite_loss_guard``), configured by the top-level keys
``nonfinite_loss`` (``stop``, the default, or ``skip``) and ``nonfinite_loss_max_skips``:

* ``stop``: the first non-finite training loss raises :class:`NonFiniteLossError` before its
  backward pass (nothing is updated): one line ``non-finite training loss nan at global
  step 7 (epoch 0, batch 7) ...``; the CLI exits 2 and status.json says ``failed``;
* ``skip``: the optimizer step that the batch belongs to is not taken. Setting the
  gradients to zero would not do: Adam/AdamW would still move every weight by its momentum
  (and AdamW by its weight decay). The guard sets every gradient of that optimizer to
  ``None`` in ``on_before_optimizer_step``; torch's optimizers skip parameters without a
  gradient, so weights, moments and Adam's step counts stay exactly as they were (under a
  16-bit GradScaler, whose ``step`` also skips on the non-finite gradients, likewise).
  Lightning still counts the step (``global_step``, the LR schedule advance), so a
  resumed run stays aligned. With gradient accumulation the whole accumulated step is
  skipped. Each skip is a warning naming the step and the loss, counted in
  ``nonfinite_loss_skipped`` (metrics.json) and logged as ``train/nonfinite_skipped``;
  more than ``max_consecutive_skips`` skips in a row stop the run (a model whose loss is
  always NaN is not training).

Under DDP the decision is reduced over all ranks (any rank's non-finite loss counts), so
every rank stops, or skips, together.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytorch_lightning as pl
import torch

from bertlab.utils.errors import BertlabError, ConfigError

log = logging.getLogger(__name__)
MODES = ("stop", "skip")


class NonFiniteLossError(BertlabError, FloatingPointError):
    """A training loss that is NaN or infinite (the run stops; exit status 2 on the CLI)."""


class NonFiniteLossGuard(pl.Callback):
    def __init__(self, mode: str = "stop", max_consecutive_skips: int = 20):
        if mode not in MODES:
            raise ConfigError("nonfinite_loss", f"must be one of {' | '.join(MODES)}, got {mode!r}")
        if (
            isinstance(max_consecutive_skips, bool)
            or not isinstance(max_consecutive_skips, int)
            or max_consecutive_skips < 1
        ):
            raise ConfigError("nonfinite_loss_max_skips", f"must be an integer >= 1, got {max_consecutive_skips!r}")
        self.mode = mode
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped = 0  # optimizer steps skipped in this run (saved in checkpoints)
        self.consecutive = 0
        self._pending: tuple[float, str] | None = None  # a non-finite loss seen since the last optimizer step

    @staticmethod
    def _where(trainer: pl.Trainer) -> str:
        return f"global step {trainer.global_step} (epoch {trainer.current_epoch}, batch {trainer.fit_loop.epoch_loop.batch_idx})"

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        if trainer.world_size > 1:  # every rank takes the same decision (a collective: all ranks get here)
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        value = float(loss.detach().float().reshape(-1)[0]) if loss.numel() else math.nan
        where = self._where(trainer)
        if self.mode == "stop":
            raise NonFiniteLossError(
                f"non-finite training loss {value} at {where}: stopped before updating the weights "
                f"(nonfinite_loss=skip skips such steps; lower optimizer.lr or set trainer.gradient_clip_val)"
            )
        self._pending = (value, where)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if self._pending is None:
            self.consecutive = 0
            return
        value, where = self._pending
        self._pending = None
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = None  # torch's optimizers leave a parameter without a gradient untouched
        self.skipped += 1
        self.consecutive += 1
        log.warning("non-finite training loss %s at %s: optimizer step skipped (%d so far)", value, where, self.skipped)
        pl_module.log("train/nonfinite_skipped", float(self.skipped), on_step=True, on_epoch=False, sync_dist=False)
        if self.consecutive > self.max_consecutive_skips:
            raise NonFiniteLossError(
                f"non-finite training loss {value} at {where}: {self.consecutive} optimizer steps in a row skipped "
                f"(nonfinite_loss_max_skips={self.max_consecutive_skips}); the run does not train"
            )

    def run_metrics(self) -> dict[str, Any]:
        """metrics.json (:class:`bertlab.callbacks.contracts.ReportsRunMetrics`): the skipped steps under ``skip``."""
        return {"nonfinite_loss_skipped": self.skipped} if self.mode == "skip" else {}

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped, "consecutive": self.consecutive}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))
        self.consecutive = int(state_dict.get("consecutive", 0))
