"""Stores the resolved run config in every checkpoint, so a checkpoint alone can be
evaluated or used for prediction (``bertlab.evaluate`` / ``bertlab.predict``) and a resume
checked against it. Declared in conf/callbacks/; ``bertlab.train`` hands it the run config
(:class:`bertlab.callbacks.contracts.NeedsRunConfig`)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

import bertlab
from bertlab.utils.config import to_plain

CKPT_KEY = "bertlab"


class RunConfigInCheckpoint(pl.Callback):
    def __init__(self, cfg: Any = None):
        self.payload: dict[str, Any] | None = None
        if cfg is not None:
            self.set_run_config(cfg)

    def set_run_config(self, cfg: Any) -> None:
        plain = to_plain(cfg)
        plain.pop("hydra", None)
        self.payload = {"config": plain, "version": bertlab.__version__}

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.payload is None:  # a checkpoint without its run config could not be resumed or evaluated
            raise RuntimeError("RunConfigInCheckpoint has no run config (bertlab.train gives it: set_run_config)")
        checkpoint[CKPT_KEY] = self.payload
