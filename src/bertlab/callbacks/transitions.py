"""Saves the learned transition matrix (CRF or MEMM head) after every validation: CSV +
heatmap PNG, sent to the loggers. Tag names default to the DataModule's ``tag_names``.

The matrix of the BEST checkpoint (the one tested and reported) is kept apart: after every
validation the monitored metric of the trainer's ModelCheckpoint is compared with the best so
far by the checkpoint's own rule (mode max/min, a strict improvement replaces it; no monitor:
the latest); an improvement writes ``best.csv`` (and ``best.png``) and sets
``transitions/best_step`` in the trainer's ``callback_metrics`` (so the run's metrics.json
names the step), next to ``step<N>.csv`` of the last step. Tables should read ``best.csv``.
The best step and score are saved in checkpoints, so a resumed run keeps the best matrix of
the whole run (was: the first validation after a resume counted as the best). Files are
written atomically.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch

from bertlab.reporting.plots import heatmap_png, send_figure
from bertlab.utils.atomic import atomic_write_text


class TransitionHeatmap(pl.Callback):
    def __init__(self, output_dir: str, tag_names: Sequence[str] | None = None, attr: str = "head"):
        self.output_dir = output_dir
        self.tag_names = list(tag_names) if tag_names else None
        self.attr = attr
        self.written: list[str] = []
        self.best_step: int | None = None
        self.best_score: float | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"best_step": self.best_step, "best_score": self.best_score}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_step, self.best_score = state.get("best_step"), state.get("best_score")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The matrix before training (step 0): the reference for how far training moved it."""
        if trainer.is_global_zero and trainer.global_step == 0:
            self._write(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self._write(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """After the epoch-end metrics are logged (the checkpoint decides on the same values)."""
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        ckpt = getattr(trainer, "checkpoint_callback", None)
        monitor = getattr(ckpt, "monitor", None)
        score = None
        if monitor is not None:
            value = trainer.callback_metrics.get(monitor)
            if value is None:
                return
            score = float(value)
            if self.best_score is not None:
                better = score > self.best_score if getattr(ckpt, "mode", "max") == "max" else score < self.best_score
                if not better:
                    return
        if self._write(trainer, pl_module, stem_name="best"):
            self.best_step, self.best_score = trainer.global_step, score
            trainer.callback_metrics["transitions/best_step"] = torch.tensor(float(trainer.global_step))

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stem_name: str | None = None) -> bool:
        head = getattr(pl_module, self.attr, None)
        trans = getattr(head, "transitions", None)
        if trans is None:
            return False
        mat = trans.detach().float().cpu().numpy()
        dm = trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning, undeclared
        names = self.tag_names or list(getattr(dm, "tag_names", None) or [])
        if len(names) != mat.shape[0]:
            names = [str(i) for i in range(mat.shape[0])]
        os.makedirs(self.output_dir, exist_ok=True)
        stem = os.path.join(self.output_dir, stem_name or f"step{trainer.global_step:07d}")
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["from\\to", *names])
        for name, row in zip(names, mat):
            w.writerow([name, *(f"{x:.6f}" for x in row)])
        atomic_write_text(stem + ".csv", buf.getvalue())
        title = f"{type(head).__name__} transitions (from rows, to columns), step {trainer.global_step}"
        if stem_name:
            title += f" ({stem_name} checkpoint)"
        fig = heatmap_png(mat, names, names, stem + ".png", title=title)
        self.written.append(stem + ".png")
        if not stem_name:
            send_figure(trainer, "crf/transitions", fig, stem + ".png")
        return True
