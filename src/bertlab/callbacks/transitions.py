"""Saves the learned transition matrix (CRF or MEMM head) after every validation: CSV +
heatmap PNG, sent to the loggers. Tag names default to the DataModule's ``tag_names``."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import pytorch_lightning as pl

from bertlab.reporting.plots import heatmap_png, send_figure


class TransitionHeatmap(pl.Callback):
    def __init__(self, output_dir: str, tag_names: Sequence[str] | None = None, attr: str = "head"):
        self.output_dir = output_dir
        self.tag_names = list(tag_names) if tag_names else None
        self.attr = attr
        self.written: list[str] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The matrix before training (step 0): the reference for how far training moved it."""
        if trainer.is_global_zero and trainer.global_step == 0:
            self._write(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self._write(trainer, pl_module)

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        head = getattr(pl_module, self.attr, None)
        trans = getattr(head, "transitions", None)
        if trans is None:
            return
        mat = trans.detach().float().cpu().numpy()
        names = self.tag_names or list(getattr(trainer.datamodule, "tag_names", None) or [])
        if len(names) != mat.shape[0]:
            names = [str(i) for i in range(mat.shape[0])]
        os.makedirs(self.output_dir, exist_ok=True)
        stem = os.path.join(self.output_dir, f"step{trainer.global_step:07d}")
        with open(stem + ".csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["from\\to", *names])
            for name, row in zip(names, mat):
                w.writerow([name, *(f"{x:.6f}" for x in row)])
        title = f"{type(head).__name__} transitions (from rows, to columns), step {trainer.global_step}"
        fig = heatmap_png(mat, names, names, stem + ".png", title=title)
        self.written.append(stem + ".png")
        send_figure(trainer, "crf/transitions", fig, stem + ".png")
