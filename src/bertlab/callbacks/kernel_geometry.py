"""Post 3's statistic during training: ``mean((W^T W - I)^2)`` of the model's Linear kernels.

Every ``every_n_steps`` optimizer steps (and at step 0) the statistic of each Linear layer
whose qualified name matches one of ``patterns`` (fnmatch) is computed
(:func:`bertlab.nn.orthogonality.gram_deviation`, ``W`` in torch layout ``[out, in]``, i.e.
``W^T W`` is ``[in, in]``); the mean and max over the layers are logged as
``geometry/gram_dev_mean`` / ``geometry/gram_dev_max``, every layer's value goes to
``<output_dir>/gram_deviation.csv`` and, at the end of fitting, a curve per layer to
``gram_deviation.png`` (sent to the loggers). A freshly initialised n x n kernel with variance
1/n sits near 1/n (post 3); training or an orthogonality regulariser moves it.
"""

from __future__ import annotations

import csv
import fnmatch
import os
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from bertlab.nn.orthogonality import gram_deviation
from bertlab.reporting.plots import curves_png, send_figure
from bertlab.utils.errors import ConfigError


class KernelGeometry(pl.Callback):
    def __init__(self, output_dir: str, patterns: Sequence[str] = ("*",), every_n_steps: int = 100):
        if int(every_n_steps) < 1:
            raise ConfigError("callbacks.kernel_geometry.every_n_steps", f"must be >= 1, got {every_n_steps}")
        self.output_dir = output_dir
        self.patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        self.every_n_steps = int(every_n_steps)
        self.steps: list[int] = []
        self.values: dict[str, list[float]] = {}

    def layers(self, pl_module: nn.Module) -> dict[str, nn.Linear]:
        found = {
            name: m
            for name, m in pl_module.named_modules()
            if isinstance(m, nn.Linear) and any(fnmatch.fnmatchcase(name, p) for p in self.patterns)
        }
        if not found:
            raise ConfigError(
                "callbacks.kernel_geometry.patterns",
                f"{self.patterns} match no Linear layer of {type(pl_module).__name__}",
            )
        return found

    @torch.no_grad()
    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule, log: bool = True) -> dict[str, float]:
        stats = {name: float(gram_deviation(m.weight.float())) for name, m in self.layers(pl_module).items()}
        step = trainer.global_step
        if self.steps and self.steps[-1] == step:
            return stats
        self.steps.append(step)
        for name, value in stats.items():
            self.values.setdefault(name, []).append(value)
        values = list(stats.values())
        if log:  # Lightning takes step metrics from batch hooks only (step 0: CSV and plot)
            pl_module.log_dict(
                {"geometry/gram_dev_mean": sum(values) / len(values), "geometry/gram_dev_max": max(values)},
                on_step=True,
                on_epoch=False,
            )
        return stats

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.layers(pl_module)  # a pattern that matches nothing fails before any step
        if trainer.global_step == 0:
            self.measure(trainer, pl_module, log=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self.measure(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.steps:
            return
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, "gram_deviation.csv")
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["step", *self.values])
            for i, step in enumerate(self.steps):
                w.writerow([step, *(f"{v[i]:.6g}" for v in self.values.values())])
        png = os.path.join(self.output_dir, "gram_deviation.png")
        series = (
            self.values
            if len(self.values) <= 12
            else {
                "mean over layers": [
                    sum(v[i] for v in self.values.values()) / len(self.values) for i in range(len(self.steps))
                ],
                "max over layers": [max(v[i] for v in self.values.values()) for i in range(len(self.steps))],
            }
        )
        fig = curves_png(
            self.steps,
            series,
            png,
            title="mean((W^T W - I)^2) of the Linear kernels",
            ylabel="mean((W^T W - I)^2)",
            logy=True,
        )
        send_figure(trainer, "geometry/gram_deviation", fig, png)
