"""Stores the resolved run config in every checkpoint, so a checkpoint alone can be
evaluated or used for prediction (``bertlab.evaluate`` / ``bertlab.predict``)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

import bertlab
from bertlab.utils.config import to_plain

CKPT_KEY = "bertlab"


class RunConfigInCheckpoint(pl.Callback):
    def __init__(self, cfg: Any):
        plain = to_plain(cfg)
        plain.pop("hydra", None)
        self.payload = {"config": plain, "version": bertlab.__version__}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CKPT_KEY] = self.payload
