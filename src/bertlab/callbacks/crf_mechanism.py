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

The post's picture of fitted emissions (the top tag's score 6-8, the others at least 3 lower) is
measured too: during every validation a forward hook on the emission layer collects, over the
tokens of the validation batches' ``attention_mask`` (all tokens for a batch without one), the
mean top emission score and the mean margin top minus second (summed over DDP ranks), logged as
``mechanism/emission_top`` and ``mechanism/emission_margin`` and written to the CSV.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from bertlab.reporting.plots import curves_png, send_figure
from bertlab.utils.atomic import atomic_write_text

TRANSITION_PARAMS = ("transitions", "start_transitions", "end_transitions")
COLUMNS = (
    "step",
    "transition_grad_norm",
    "emission_grad_norm",
    "val_f1",
    "val_f1_emissions_only",
    "transitions_add",
    "emission_top",
    "emission_margin",
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


@torch.no_grad()
def emission_margin_sums(emissions: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[float, float, int]:
    """(sum of the top score, sum of top minus second, number of tokens) over the tokens of
    ``emissions`` ``[..., K]`` (K >= 2) where ``mask`` (same shape without K) is true; every token
    when ``mask`` is None or of another shape."""
    top2 = emissions.detach().float().topk(2, dim=-1).values
    top, gap = top2[..., 0], top2[..., 0] - top2[..., 1]
    if mask is not None and tuple(mask.shape) == tuple(top.shape):
        keep = mask.to(device=top.device, dtype=torch.bool)
        top, gap = top[keep], gap[keep]
    return float(top.sum()), float(gap.sum()), int(top.numel())


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
        self._margin = [0.0, 0.0, 0]  # sums of the top score and of top - second, tokens
        self._mask: torch.Tensor | None = None
        self._hook: RemovableHandle | None = None
        #: one per validation: the step (int) and the measurements (float, None when not measured)
        self.rows: list[dict[str, Any]] = []

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

    # ------------------------------------------------ the emission margin, during validation
    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remove_hook()
        self._margin, self._mask = [0.0, 0.0, 0], None
        emission = getattr(pl_module, self.emission_attr, None)
        if not trainer.sanity_checking and isinstance(emission, nn.Module):
            self._hook = emission.register_forward_hook(self._on_emissions)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None

    def _on_emissions(self, module: nn.Module, inputs, output) -> None:
        if isinstance(output, torch.Tensor) and output.dim() >= 1 and output.shape[-1] >= 2:
            top, gap, n = emission_margin_sums(output, self._mask)
            self._margin = [self._margin[0] + top, self._margin[1] + gap, self._margin[2] + n]

    def _emission_margin(self, trainer: pl.Trainer, device: torch.device) -> tuple[float | None, float | None]:
        """(mean top emission score, mean top - second) over this validation's tokens, all ranks."""
        self._remove_hook()
        sums = torch.tensor(self._margin, dtype=torch.float64, device=device)
        self._margin, self._mask = [0.0, 0.0, 0], None
        sums = trainer.strategy.reduce(sums, reduce_op="sum") if trainer.world_size > 1 else sums
        n = float(sums[2])
        return (float(sums[0]) / n, float(sums[1]) / n) if n > 0 else (None, None)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._remove_hook()

    # ------------------------------------------------------------------------ per validation
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The gradient norms since the previous validation and this validation's emission
        margin (logged through the module)."""
        if trainer.sanity_checking:
            return
        top, margin = self._emission_margin(trainer, pl_module.device)
        trans = sum(self._trans) / len(self._trans) if self._trans else None
        emis = sum(self._emis) / len(self._emis) if self._emis else None
        self._trans, self._emis = [], []
        if trans is None and emis is None:
            return  # a task without a tagging head: nothing to record
        self.rows.append(
            {
                "step": trainer.global_step,
                "transition_grad_norm": trans,
                "emission_grad_norm": emis,
                "emission_top": top,
                "emission_margin": margin,
            }
        )
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
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(COLUMNS)
        for row in self.rows:
            w.writerow(["" if row.get(c) is None else row[c] for c in COLUMNS])
        atomic_write_text(os.path.join(self.output_dir, "mechanism.csv"), buf.getvalue())

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
