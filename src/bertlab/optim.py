"""Optimizers with per-module learning-rate multipliers, and bert4keras-style schedules.

``optimizer.lr_multipliers`` maps module-name patterns to factors, e.g. ``{crf: 100}``.
A pattern matches a parameter when it is a glob on the full dotted parameter name
(``encoder.encoder.layer.0.*``) or equals one of the name's dotted components (``crf``
matches ``crf.transitions``). The first matching pattern wins; unmatched parameters keep
the base lr. Each factor becomes one param group with ``lr = base_lr * factor`` (under
Adam this is what bert4keras's reparameterisation amounts to, up to eps) and a ``name``
that the lr monitor logs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from hydra.utils import get_class

from bertlab.utils.errors import ConfigError


def _matches(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) or pattern in name.split(".")


def build_param_groups(
    named_params: Iterable[tuple[str, torch.nn.Parameter]],
    base_lr: float,
    lr_multipliers: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    mults = dict(lr_multipliers or {})
    for pattern, factor in mults.items():
        if not isinstance(factor, (int, float)) or factor <= 0:
            raise ConfigError(f"optimizer.lr_multipliers.{pattern}", f"must be a positive number, got {factor!r}")
    groups: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for name, param in named_params:
        if not param.requires_grad:
            continue
        key = next((p for p in mults if _matches(p, name)), None)
        gname = "base" if key is None else key
        if gname not in groups:
            factor = 1.0 if key is None else float(mults[key])
            groups[gname] = {"params": [], "lr": base_lr * factor, "lr_multiplier": factor, "name": gname}
        groups[gname]["params"].append(param)
        if key is not None:
            used.add(key)
    unused = set(mults) - used
    if unused:
        raise ConfigError(f"optimizer.lr_multipliers.{sorted(unused)[0]}", "matches no parameter of the model")
    return list(groups.values())


def build_optimizer(module: torch.nn.Module, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """cfg: ``_target_`` (an optimizer class), ``lr``, ``lr_multipliers`` and the class's own kwargs."""
    cfg = dict(cfg)
    target = cfg.pop("_target_", "torch.optim.Adam")
    mults = cfg.pop("lr_multipliers", None)
    if "lr" not in cfg:
        raise ConfigError("optimizer.lr", "missing")
    groups = build_param_groups(module.named_parameters(), float(cfg["lr"]), mults)
    try:
        cls = get_class(target)
    except Exception as err:  # hydra raises ImportError/ValueError variants
        raise ConfigError("optimizer._target_", f"cannot import {target!r}") from err
    if "betas" in cfg:
        cfg["betas"] = tuple(cfg["betas"])
    return cls(groups, **cfg)


def piecewise_linear(schedule: Mapping[int, float]):
    """bert4keras's ``piecewise_linear``: factor(step) linear between the given points.

    ``{1000: 1, 2000: 0.1}`` warms up from 0 to 1 over 1000 steps, then decays to 0.1 at
    step 2000 and stays there. An implicit point (0, 0) is added when step 0 is not given.
    """
    points = sorted((int(k), float(v)) for k, v in schedule.items())
    if not points or points[0][0] != 0:
        points = [(0, 0.0), *points]

    def factor(step: int) -> float:
        if step >= points[-1][0]:
            return points[-1][1]
        for (s0, v0), (s1, v1) in zip(points, points[1:]):
            if s0 <= step < s1:
                return v0 + (v1 - v0) * (step - s0) / (s1 - s0)
        return points[-1][1]

    return factor


def warmup_linear_decay(warmup_steps: int, total_steps: int, final_factor: float = 0.0):
    """Linear warm-up from 0 to 1 over ``warmup_steps``, then linear decay to ``final_factor``
    at ``total_steps`` (the whole run, e.g. Lightning's ``estimated_stepping_batches``)."""
    warmup_steps = max(0, int(warmup_steps))
    total_steps = max(warmup_steps + 1, int(total_steps))
    return piecewise_linear({0: 0.0 if warmup_steps else 1.0, warmup_steps: 1.0, total_steps: final_factor})


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any] | None, total_steps: int | None = None):
    """None / ``{type: constant}`` -> None;
    ``{type: piecewise_linear, schedule: {step: factor}}`` (bert4keras);
    ``{type: warmup_linear, warmup_steps, final_factor}`` (decays over ``total_steps``)."""
    if not cfg or cfg.get("type", "constant") == "constant":
        return None
    if cfg["type"] == "piecewise_linear":
        factor = piecewise_linear(cfg["schedule"])
    elif cfg["type"] == "warmup_linear":
        if not total_steps or total_steps <= 0:
            raise ConfigError(
                "scheduler.type",
                "warmup_linear needs a known number of training steps (trainer.max_steps or max_epochs)",
            )
        factor = warmup_linear_decay(cfg.get("warmup_steps", 0), total_steps, cfg.get("final_factor", 0.0))
    else:
        raise ConfigError(
            "scheduler.type", f"unknown scheduler {cfg['type']!r} (constant | piecewise_linear | warmup_linear)"
        )
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"scheduler": sched, "interval": "step", "frequency": 1}


def configure_optimizers(module) -> Any:
    """``LightningModule.configure_optimizers`` for every task: the optimizer of
    ``module.hparams.optimizer`` (lr multipliers included) and the scheduler of
    ``module.hparams.scheduler``, stepped per batch (``warmup_linear`` decays over the run's
    estimated number of steps)."""
    opt = build_optimizer(module, module.hparams.optimizer)
    total = module.trainer.estimated_stepping_batches if module._trainer is not None else None
    sched = build_scheduler(
        opt, module.hparams.get("scheduler"), int(total) if total and total != float("inf") else None
    )
    return opt if sched is None else {"optimizer": opt, "lr_scheduler": sched}
