"""Exponential moving average of the weights (bert4keras ``ExponentialMovingAverage`` /
``extend_with_exponential_moving_average``), as a generic Lightning callback.

After every optimizer step: ``ema <- d * ema + (1 - d) * w`` for every floating-point
parameter ``w`` of the LightningModule, ``ema`` starting at the weights the fit starts
with. ``d = decay``; with ``warmup: true`` it is ``min(decay, (1 + n) / (10 + n))`` after
``n`` updates (TensorFlow's ``num_updates`` rule), so that a short run is not dominated by
its random initial weights (the bert4keras example warns that decay 0.999 needs 5,000+
steps).

- Validation and test run on the EMA weights (swapped in at the start, the training
  weights swapped back at the end), so checkpoint selection sees the EMA model.
- Every checkpoint's ``state_dict`` holds the EMA weights (so ``load_from_checkpoint``,
  ``bertlab.evaluate`` and ``bertlab.predict`` use them without knowing about EMA); the
  callback's own state holds the training weights and the update count. Resuming from such
  a checkpoint puts the training weights back into the model and the EMA weights into the
  callback, so a resumed run continues exactly as an uninterrupted one.
- ``trainer.test(ckpt_path=...)`` after fitting: the model already holds that checkpoint's
  EMA weights, so nothing is swapped.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch

log = logging.getLogger(__name__)

__all__ = ["EMA"]


class EMA(pl.Callback):
    def __init__(self, decay: float = 0.999, warmup: bool = False, every_n_steps: int = 1):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.every_n_steps = max(1, int(every_n_steps))
        self.num_updates = 0
        self.ema: dict[str, torch.Tensor] | None = None
        self._module: pl.LightningModule | None = None
        self._backup: dict[str, torch.Tensor] | None = None  # training weights while EMA is swapped in
        self._pending: dict[str, Any] | None = None  # restored state, applied at train start
        self._last_step = -1

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _tracked(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in module.named_parameters() if p.is_floating_point()}

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        return self.decay

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        """One EMA step from the module's current weights."""
        params = self._tracked(module)
        if self.ema is None:
            self.ema = {n: p.detach().clone() for n, p in params.items()}
            return
        d = self.current_decay()
        names = list(self.ema)
        torch._foreach_lerp_([self.ema[n] for n in names], [params[n].detach() for n in names], 1.0 - d)
        self.num_updates += 1

    @torch.no_grad()
    def _copy_into(self, module: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
        params = self._tracked(module)
        for n, w in weights.items():
            params[n].copy_(w)

    @property
    def swapped(self) -> bool:
        return self._backup is not None

    @torch.no_grad()
    def swap_in(self, module: torch.nn.Module) -> None:
        """Put the EMA weights into the module (keeping the training weights)."""
        if self.ema is None or self._backup is not None:
            return
        self._backup = {n: p.detach().clone() for n, p in self._tracked(module).items()}
        self._copy_into(module, self.ema)

    @torch.no_grad()
    def swap_out(self, module: torch.nn.Module) -> None:
        """Put the training weights back."""
        if self._backup is None:
            return
        self._copy_into(module, self._backup)
        self._backup = None

    # ------------------------------------------------------------------ training
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._module = pl_module

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.ema is None:
            self.update(pl_module)  # ema_0 = the initial weights

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state, self._pending = self._pending, None
        if state is not None:  # resumed: the model holds the checkpoint's EMA weights
            with torch.no_grad():
                self.ema = {n: p.detach().clone() for n, p in self._tracked(pl_module).items()}
                params = self._tracked(pl_module)
                self._copy_into(pl_module, {n: w.to(params[n].device) for n, w in state["train_weights"].items()})
            self.num_updates = int(state["num_updates"])
            log.info("EMA: resumed after %d updates", self.num_updates)
        self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step != self._last_step:  # an optimizer step happened (gradient accumulation aware)
            self._last_step = step
            if step % self.every_n_steps == 0:
                self.update(pl_module)

    # ------------------------------------------------------------------ evaluation
    def _eval_start(self, pl_module: pl.LightningModule) -> None:
        if self._pending is not None:  # just loaded from a checkpoint: the model holds EMA weights
            return
        self.swap_in(pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._eval_start(pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        self.swap_out(pl_module)

    def on_test_start(self, trainer, pl_module) -> None:
        self._eval_start(pl_module)

    def on_test_end(self, trainer, pl_module) -> None:
        self.swap_out(pl_module)

    def on_predict_start(self, trainer, pl_module) -> None:
        self._eval_start(pl_module)

    def on_predict_end(self, trainer, pl_module) -> None:
        self.swap_out(pl_module)

    # ------------------------------------------------------------------ checkpoints
    def _train_weights(self) -> dict[str, torch.Tensor] | None:
        if self._backup is not None:
            return self._backup
        if self._module is None:
            return None
        return {n: p.detach().clone() for n, p in self._tracked(self._module).items()}

    def state_dict(self) -> dict[str, Any]:
        if self.ema is None:
            return {"decay": self.decay, "num_updates": self.num_updates}
        return {"decay": self.decay, "num_updates": self.num_updates, "train_weights": self._train_weights()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "train_weights" in state_dict:
            self._pending = state_dict

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        """The checkpoint's model weights become the EMA weights (tied names included)."""
        if self.ema is None:
            return
        by_id = {id(p): n for n, p in self._tracked(pl_module).items()}
        sd = checkpoint["state_dict"]
        for key, value in pl_module.state_dict(keep_vars=True).items():
            name = by_id.get(id(value))
            if name is not None and key in sd:
                sd[key] = self.ema[name].detach().clone()
