"""Initialisation laws for freshly built Linear layers (post 3, "initialisation from a geometric view").

For ``y = W x`` with ``n = fan_in`` inputs and ``m = fan_out`` outputs (torch's Linear
weight has shape ``[m, n]``), every law draws i.i.d. zero-mean entries; biases are zero:

=============  ======================  ================================================
law            variance                note
=============  ======================  ================================================
``hf``         ``std**2`` (0.02**2)    HF / Google BERT default ``initializer_range``
``xavier``     ``2 / (n + m)``         Glorot
``lecun``      ``1 / n``               keeps the forward variance (1/fan_in)
``dual``       ``1 / m``               the post's: makes ``W^T W ~ I`` when m >= n
``he``         ``2 / n``               for ReLU
``orthogonal`` (``1 / max(n, m)``)     ``torch.nn.init.orthogonal_``: exactly (semi-)orthogonal
=============  ======================  ================================================

The variance laws draw from a normal distribution; append ``_uniform`` (``lecun_uniform``)
for ``U[-sqrt(3 v), sqrt(3 v)]`` of the same variance v (the post: any zero-mean law of
variance 1/n gives a nearly orthogonal matrix).

``apply_init(module, spec)``: ``spec`` is a law name (every ``nn.Linear`` in ``module``) or
a mapping ``{module-name pattern: law}`` (first matching pattern wins; Linear layers that
match none keep their weights). Patterns match like ``optimizer.lr_multipliers``: a glob on
the dotted module name, or equal to one of its components. Embeddings and LayerNorms keep
their own initialisation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from bertlab.optim import _matches
from bertlab.utils.errors import ConfigError

__all__ = ["LAWS", "apply_init", "init_linear_", "law_variance"]

LAWS = ("hf", "xavier", "lecun", "dual", "he", "orthogonal")


def _parse(law: str, key: str) -> tuple[str, bool]:
    name = str(law)
    uniform = name.endswith("_uniform")
    base = name[: -len("_uniform")] if uniform else name
    if base not in LAWS or (uniform and base == "orthogonal"):
        choices = [*LAWS, *(f"{x}_uniform" for x in LAWS if x != "orthogonal")]
        raise ConfigError(key, f"unknown init {name!r}; choose one of {choices}")
    return base, uniform


def law_variance(law: str, fan_in: int, fan_out: int, std: float = 0.02) -> float:
    """The entry variance of ``law`` for a ``[fan_out, fan_in]`` weight."""
    base, _ = _parse(law, "init")
    return {
        "hf": std**2,
        "xavier": 2.0 / (fan_in + fan_out),
        "lecun": 1.0 / fan_in,
        "dual": 1.0 / fan_out,
        "he": 2.0 / fan_in,
        "orthogonal": 1.0 / max(fan_in, fan_out),
    }[base]


@torch.no_grad()
def init_weight_(
    weight: torch.Tensor, law: str, std: float = 0.02, generator: torch.Generator | None = None, key: str = "init"
) -> torch.Tensor:
    """Fill a ``[fan_out, fan_in]`` tensor in place under ``law``."""
    base, uniform = _parse(law, key)
    fan_out, fan_in = weight.shape[0], int(weight[0].numel())
    if base == "orthogonal":
        return nn.init.orthogonal_(weight, generator=generator)
    var = law_variance(base, fan_in, fan_out, std)
    if uniform:
        bound = math.sqrt(3.0 * var)
        return weight.uniform_(-bound, bound, generator=generator)
    return weight.normal_(0.0, math.sqrt(var), generator=generator)


@torch.no_grad()
def init_linear_(
    layer: nn.Linear, law: str, std: float = 0.02, generator: torch.Generator | None = None, key: str = "init"
) -> None:
    """Weight under ``law``, bias zero."""
    init_weight_(layer.weight, law, std, generator, key)
    if layer.bias is not None:
        layer.bias.zero_()


def apply_init(
    module: nn.Module,
    spec: str | Mapping[str, str] | None,
    std: float = 0.02,
    key: str = "model.init",
    generator: torch.Generator | None = None,
) -> list[str]:
    """Initialise the Linear layers of ``module`` as ``spec`` says; returns their names.

    ``spec``: None (nothing), a law name, or ``{pattern: law}``. A pattern that matches no
    Linear layer, or an unknown law, is a ConfigError naming ``key``.
    """
    if spec is None or spec == "none":
        return []
    linears = [(name, mod) for name, mod in module.named_modules() if isinstance(mod, nn.Linear)]
    if isinstance(spec, str):
        rules: dict[str, Any] = {"*": spec}
        keys = {"*": key}
    elif isinstance(spec, Mapping):
        rules = dict(spec)
        keys = {p: f"{key}.{p}" for p in rules}
    else:
        raise ConfigError(key, f"must be a law name or a mapping {{module pattern: law}}, got {spec!r}")
    for pat, law in rules.items():
        _parse(law, keys[pat])
    done, used = [], set()
    for name, mod in linears:
        pattern = next((p for p in rules if _matches(p, name)), None)
        if pattern is None:
            continue
        init_linear_(mod, rules[pattern], std, generator, keys[pattern])
        used.add(pattern)
        done.append(name)
    unused = [p for p in rules if p not in used]
    if unused:
        raise ConfigError(keys[unused[0]], "matches no Linear layer of the model")
    return done
