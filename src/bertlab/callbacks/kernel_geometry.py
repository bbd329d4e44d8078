"""Post 3's statistic during training: ``mean((W^T W - I)^2)`` of the model's Linear kernels.

Every ``every_n_steps`` optimizer steps (and at step 0) the statistic of each Linear layer
whose qualified name matches one of ``patterns`` (fnmatch) is computed
(:func:`bertlab.nn.orthogonality.gram_deviation`, ``W`` in torch layout ``[out, in]``, i.e.
``W^T W`` is ``[in, in]``); the mean and max over the layers are logged as
``geometry/gram_dev_mean`` / ``geometry/gram_dev_max``, every layer's value goes to
``<output_dir>/gram_deviation.csv`` and, at the end of fitting, a curve per layer to
``gram_deviation.png`` (sent to the loggers). A freshly initialised n x n kernel with variance
1/n sits near 1/n (post 3); training or an orthogonality regulariser moves it.

Next to it, its two parts (:func:`bertlab.nn.orthogonality.kernel_statistics`): the diagonal
part mean((diag(G) - 1)^2) and the off-diagonal part on normalised vectors (mean squared
cosine), ``G`` = W^T W for m >= n and W W^T for a wide kernel, plus the mean squared cosine
between the output filters (rows), which is what SOM acts on. Their means over the layers
are logged as ``geometry/gram_diag_mean``, ``geometry/gram_offdiag_cos2_mean`` and
``geometry/filter_cos2_mean``; every layer's values (with its ``gram_side``) go to
``<output_dir>/kernel_statistics.csv``; and the kernels as fitting ends are measured once more
into the trainer's ``callback_metrics`` as ``geometry/final_<stat>_mean``, next to the step-0
values ``geometry/init_<stat>_mean`` (a fresh run) and ``geometry/final_n_rows_gram`` (the
number of wide layers measured on W W^T); the run's metrics.json keeps them.
"""

from __future__ import annotations

import csv
import fnmatch
import os
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from bertlab.nn.orthogonality import kernel_statistics
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
        #: (step, layer, kernel_statistics(...)) for every measurement
        self.rows: list[tuple[int, str, dict[str, float | str]]] = []

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
        full = {name: kernel_statistics(m.weight.float()) for name, m in self.layers(pl_module).items()}
        stats = {name: float(st["gram_dev"]) for name, st in full.items()}
        step = trainer.global_step
        if self.steps and self.steps[-1] == step:
            return stats
        self.steps.append(step)
        for name, value in stats.items():
            self.values.setdefault(name, []).append(value)
            self.rows.append((step, name, full[name]))
        values = list(stats.values())
        if log:  # Lightning takes step metrics from batch hooks only (step 0: CSV and plot)
            pl_module.log_dict(
                {
                    "geometry/gram_dev_mean": sum(values) / len(values),
                    "geometry/gram_dev_max": max(values),
                    **{f"geometry/{k}_mean": v for k, v in self.layer_means(full).items() if k != "gram_dev"},
                },
                on_step=True,
                on_epoch=False,
            )
        return stats

    @staticmethod
    def layer_means(full: dict[str, dict[str, float | str]]) -> dict[str, float]:
        """Mean over the layers of every numeric statistic."""
        keys = [k for k, v in next(iter(full.values())).items() if isinstance(v, float)]
        return {k: sum(float(st[k]) for st in full.values()) / len(full) for k in keys}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.layers(pl_module)  # a pattern that matches nothing fails before any step
        if trainer.global_step == 0:
            self.measure(trainer, pl_module, log=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self.measure(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the kernels as fitting ends, into callback_metrics (train.py copies them to metrics.json)
        final = {name: kernel_statistics(m.weight.float()) for name, m in self.layers(pl_module).items()}
        for k, v in self.layer_means(final).items():
            trainer.callback_metrics[f"geometry/final_{k}_mean"] = torch.tensor(v)
        if self.steps and self.steps[0] == 0:  # and as training started, to show what moved
            init = {name: st for step, name, st in self.rows if step == 0}
            for k, v in self.layer_means(init).items():
                trainer.callback_metrics[f"geometry/init_{k}_mean"] = torch.tensor(v)
        n_rows = sum(st["gram_side"] == "rows" for st in final.values())
        trainer.callback_metrics["geometry/final_n_rows_gram"] = torch.tensor(float(n_rows))
        if not trainer.is_global_zero or not self.steps:
            return
        os.makedirs(self.output_dir, exist_ok=True)
        with open(os.path.join(self.output_dir, "kernel_statistics.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            keys = list(self.rows[0][2])
            w.writerow(["step", "layer", *keys])
            for step, name, st in self.rows:
                w.writerow([step, name, *(v if isinstance(v, str) else f"{v:.6g}" for v in st.values())])
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
