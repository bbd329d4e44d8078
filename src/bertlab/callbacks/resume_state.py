"""Everything an interrupted run needs, besides weights/optimizer/schedulers/loops (which
Lightning restores itself), to continue exactly as if it had never stopped.

* **Random numbers per training batch.** With ``step_seed`` (the default) the python,
  numpy and torch generators are re-seeded at the start of every training batch from
  ``(seed, batch number)`` (as fairseq does per update), so dropout masks depend on
  nothing but the seed and the position in training: not on how many random numbers
  validation, a new DataLoader iterator (each draws one seed from torch's generator) or
  a resume consumed in between. A resumed run draws the very same masks.
* **Generator states in the checkpoint.** The python / numpy / torch (and CUDA) states at
  save time are stored under ``checkpoint["bertlab_resume"]["rng"]`` and put back at the
  first training batch after a resume (without ``step_seed`` this is what continues the
  random stream; exact as long as nothing drew random numbers between the save and the
  next training batch of the original run).
* **Data order.** Lightning calls ``set_epoch`` on a loader's ``sampler`` and on
  ``batch_sampler.sampler`` but never on the batch sampler itself, so a batch sampler
  such as :class:`~bertlab.data.samplers.BucketBatchSampler` would draw the order of
  epoch 0 in every epoch: this callback calls ``set_epoch(current_epoch)`` on the training
  loader's batch sampler at the start of every epoch (before its first batch is drawn).
  The training DataLoader's position is saved and restored by Lightning itself when
  the loader is stateful (:class:`bertlab.data.samplers.ResumableDataLoader`);
  :func:`bertlab.train.train` makes plain loaders with a position-saving sampler so.
  Lightning applies the saved position only if it builds the loader *after* restoring
  its loops; a ``configure_optimizers`` that asks for ``trainer.estimated_stepping_batches``
  (warm-up schedules) makes it build the loader before, and the position is silently
  dropped (the resumed epoch restarts at its first batch). :meth:`on_train_start` applies
  the pending position then and restarts the loader's iterator, before any batch is drawn.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from bertlab.data.samplers import log_global_batch

log = logging.getLogger(__name__)

CKPT_KEY = "bertlab_resume"


def batch_seed(seed: int, batch_number: int) -> int:
    """A 32-bit seed for training batch ``batch_number`` of a run seeded with ``seed``
    (SeedSequence mixing: seeds s and s+1 do not give shifted copies of one stream)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(batch_number)]).generate_state(1)[0])


def get_rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = state["numpy"]
    np.random.set_state((npy[0], np.asarray(npy[1], dtype=np.uint32), *npy[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # all devices


class ResumeState(pl.Callback):
    """See the module docstring. ``seed``: the run's seed (``${seed}``); ``step_seed``:
    re-seed every training batch (False: continue one random stream, restored on resume)."""

    def __init__(self, seed: int | None = 0, step_seed: bool = True):
        self.seed = 0 if seed is None else int(seed)
        self.step_seed = bool(step_seed)
        self._pending_rng: dict[str, Any] | None = None

    @property
    def state_key(self) -> str:
        return "ResumeState"

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:  # data sharded by rank (bertlab.data.samplers): say the global batch
            dm_hp = getattr(getattr(trainer, "datamodule", None), "hparams", None)
            log_global_batch(trainer, getattr(dm_hp, "batch_size", None))
        fit_loop = trainer.fit_loop
        pending = getattr(fit_loop, "_combined_loader_states_to_load", None)
        if not pending or not fit_loop.restarting:
            return
        fetcher = getattr(fit_loop, "_data_fetcher", None)
        load = getattr(fit_loop, "_load_combined_loader_states", None)
        if fetcher is None or load is None:
            log.warning(
                "cannot restore the training data position (unknown Lightning internals): "
                "the resumed epoch restarts at its first batch"
            )
            return
        load()
        iter(fetcher)  # a fresh iterator that starts at the restored position
        log.info("restored the training data position after Lightning had built the loader early")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loaders = trainer.train_dataloader
        if loaders is None:
            return
        for loader in (
            loaders
            if isinstance(loaders, (list, tuple))
            else loaders.values()
            if isinstance(loaders, dict)
            else [loaders]
        ):
            set_epoch = getattr(getattr(loader, "batch_sampler", None), "set_epoch", None)
            if callable(set_epoch):
                set_epoch(trainer.current_epoch)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None
        if self.step_seed:
            # the number of this training batch in the whole run (restored with the loops)
            seed_all(batch_seed(self.seed, trainer.fit_loop.total_batch_idx))

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CKPT_KEY] = {"rng": get_rng_state(), "seed": self.seed, "step_seed": self.step_seed}

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        saved = checkpoint.get(CKPT_KEY)
        if not saved:
            log.warning(
                "the checkpoint holds no random-number state (not written by bertlab.train?): "
                "the resumed run will not repeat the original one exactly"
            )
            return
        if saved.get("seed") != self.seed or saved.get("step_seed") != self.step_seed:
            log.warning(
                "resuming a run trained with seed=%s step_seed=%s as seed=%s step_seed=%s",
                saved.get("seed"),
                saved.get("step_seed"),
                self.seed,
                self.step_seed,
            )
        self._pending_rng = saved["rng"]
