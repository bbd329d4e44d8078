"""The CRF post's mechanism, measured: how large the transitions' gradient is while the
emissions fit (post 1).

The post's explanation of why the CRF needs a larger learning rate: BERT fits the emissions so
fast that the gradient reaching the transition matrix becomes tiny, so at the encoder's lr the
transitions stay near their initialisation. This callback records, at every optimizer step
(before the step, after gradient clipping/unscaling by Lightning), the L2 norm of the
gradient of

* the head's transition parameters (``transitions`` and, when present, ``start_transitions`` /
  ``end_transitions``), and
* the emission layer (``pl_module.emission``: weight and bias),

and at every validation logs their means over the steps since the previous validation as
``mechanism/transition_grad_norm`` and ``mechanism/emission_grad_norm`` (the raw gradient, not
the lr-scaled update: Adam's update size does not depend on it, the post's argument is about the
gradient), writes one CSV row per validation to ``<output_dir>/mechanism.csv`` and, at the end
of fitting, the curves to ``<output_dir>/mechanism.png`` (sent to the loggers).

Next to them the task logs ``val/f1_emissions_only`` (decoding the emissions alone, argmax per
token, no transitions); the CSV carries ``transitions_add`` = CRF F1 - emissions-only F1 when
both are logged.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable

import pytorch_lightning as pl
import torch
from torch import nn

from bertlab.reporting.plots import curves_png, send_figure

TRANSITION_PARAMS = ("transitions", "start_transitions", "end_transitions")
COLUMNS = (
    "step",
    "transition_grad_norm",
    "emission_grad_norm",
    "val_f1",
    "val_f1_emissions_only",
    "transitions_add",
)


def grad_norm(params: Iterable[torch.Tensor | None]) -> float | None:
    """L2 norm of the gradients of ``params`` taken together (None when none has a gradient)."""
    total, seen = 0.0, False
    for p in params:
        if p is None or p.grad is None:
            continue
        total += float(p.grad.detach().float().pow(2).sum())
        seen = True
    return math.sqrt(total) if seen else None


def transition_params(head: nn.Module | None) -> list[torch.Tensor]:
    if head is None:
        return []
    return [p for p in (getattr(head, n, None) for n in TRANSITION_PARAMS) if isinstance(p, torch.Tensor)]


class CRFMechanism(pl.Callback):
    def __init__(self, output_dir: str, head_attr: str = "head", emission_attr: str = "emission"):
        self.output_dir = output_dir
        self.head_attr = head_attr
        self.emission_attr = emission_attr
        self._trans: list[float] = []
        self._emis: list[float] = []
        self.rows: list[dict[str, float | int | None]] = []

    def _modules(self, pl_module: pl.LightningModule) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        head = getattr(pl_module, self.head_attr, None)
        emission = getattr(pl_module, self.emission_attr, None)
        return transition_params(head), list(emission.parameters()) if isinstance(emission, nn.Module) else []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        trans, emis = self._modules(pl_module)
        t, e = grad_norm(trans), grad_norm(emis)
        if t is not None:
            self._trans.append(t)
        if e is not None:
            self._emis.append(e)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The gradient norms since the previous validation (logged through the module)."""
        if trainer.sanity_checking:
            return
        trans = sum(self._trans) / len(self._trans) if self._trans else None
        emis = sum(self._emis) / len(self._emis) if self._emis else None
        self._trans, self._emis = [], []
        if trans is None and emis is None:
            return  # a task without a tagging head: nothing to record
        self.rows.append({"step": trainer.global_step, "transition_grad_norm": trans, "emission_grad_norm": emis})
        logged = {f"mechanism/{k}": float(v) for k, v in self.rows[-1].items() if k != "step" and v is not None}
        if logged:
            pl_module.log_dict(logged)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """After the task scored the split (its epoch-end hook runs after the callbacks')."""
        if trainer.sanity_checking or not self.rows or self.rows[-1].get("step") != trainer.global_step:
            return
        row = self.rows[-1]
        val = getattr(pl_module, "last_metrics", {}).get("val", {})
        f1, f1_em = val.get("f1"), val.get("f1_emissions_only")
        row.update(
            val_f1=f1,
            val_f1_emissions_only=f1_em,
            transitions_add=(f1 - f1_em) if f1 is not None and f1_em is not None else None,
        )
        if row["transitions_add"] is not None:
            for lg in trainer.loggers:
                lg.log_metrics({"mechanism/transitions_add": float(row["transitions_add"])}, step=trainer.global_step)
        if trainer.is_global_zero:
            self._write_csv()

    def _write_csv(self) -> None:
        os.makedirs(self.output_dir, exist_ok=True)
        with open(os.path.join(self.output_dir, "mechanism.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for row in self.rows:
                w.writerow(["" if row.get(c) is None else row[c] for c in COLUMNS])

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.rows:
            return
        steps = [int(r["step"]) for r in self.rows]
        series = {
            name: [float("nan") if r.get(name) is None else float(r[name]) for r in self.rows]
            for name in ("transition_grad_norm", "emission_grad_norm")
        }
        if all(math.isnan(v) for v in series["transition_grad_norm"]):
            return  # a softmax head: nothing to plot
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, "mechanism.png")
        fig = curves_png(
            steps, series, path, title="gradient norm (mean since the previous validation)", ylabel="L2", logy=True
        )
        send_figure(trainer, "mechanism/grad_norms", fig, path)
