"""Test after every training epoch (``test_every_epoch=true``), for tables that report the test
score after epoch 1 next to the best one (the CRF post's layer-1 table, post 2's triples).

At the end of every training epoch the task scores the test split
(:meth:`bertlab.tasks.evaluation.EvalCollector.evaluate_now`: the same predictions and metrics
as a test run) and the float metrics go to the loggers as ``test_epoch/<name>`` (with the
epoch), one row per epoch to ``<output_dir>/test_epoch.csv``. They are written to the loggers
directly, never through ``LightningModule.log``: they are not in ``trainer.callback_metrics``, so
no checkpoint, early stopping or sweep can select on them.
"""

from __future__ import annotations

import csv
import os
from typing import Any

import pytorch_lightning as pl

from bertlab.tasks.evaluation import EvalCollector
from bertlab.utils.errors import ConfigError


class TestEveryEpoch(pl.Callback):
    def __init__(self, output_dir: str, enabled: bool = False):
        self.output_dir = output_dir
        self.enabled = bool(enabled)
        self.history: list[dict[str, Any]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled or trainer.sanity_checking:
            return
        if not isinstance(pl_module, EvalCollector):
            raise ConfigError("test_every_epoch", f"{type(pl_module).__name__} has no test-set scoring")
        loader = trainer.datamodule.test_dataloader()  # type: ignore[attr-defined]  # set by Lightning, undeclared
        metrics = pl_module.evaluate_now("test", loader)
        row: dict[str, float] = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step}
        row.update({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        self.history.append(row)
        for lg in trainer.loggers:
            lg.log_metrics({f"test_epoch/{k}": v for k, v in row.items() if k != "step"}, step=trainer.global_step)
        if trainer.is_global_zero:
            self._write()

    def _write(self) -> None:
        cols = list(dict.fromkeys(k for row in self.history for k in row))
        os.makedirs(self.output_dir, exist_ok=True)
        with open(os.path.join(self.output_dir, "test_epoch.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(self.history)
