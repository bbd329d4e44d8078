"""Condition every LayerNorm of a HF BERT-family model, and a causal attention mask (post 7124).

``condition_layer_norms(modules, cond_dim)`` replaces EVERY ``nn.LayerNorm`` inside the
given modules (for BERT: the embedding norm, both norms of every block, and the MLM head's
transform norm) by a :class:`ContextLayerNorm`: a
:class:`~bertlab.nn.conditional_layer_norm.ConditionalLayerNorm` copied from it (same
gamma, beta, eps; W_g/W_b zero, so the model's outputs are unchanged at first) that reads
its condition from a shared :class:`ConditionContext`. The HF modules keep calling
``self.LayerNorm(x)`` with one argument; the condition is supplied per forward:

    ctx = condition_layer_norms([encoder, mlm_head], cond_dim=128)
    with ctx.use(cond):            # cond: [B, cond_dim], one row per batch row
        logits = mlm_head(encoder(input_ids, attention_mask=mask).last_hidden_state)

The condition lives only inside the ``with`` block and is per thread (``threading.local``),
so nothing leaks between batches or threads; a forward outside any ``use`` block raises.
Parameter names stay those of the replaced norm (``...LayerNorm.weight`` / ``.bias``) plus
``...LayerNorm.gamma_dense.weight`` / ``beta_dense.weight`` (and ``cond_proj``).

``causal_attention_mask(attention_mask)`` is a 4-D additive mask that HF's BertModel /
AlbertModel take as ``attention_mask`` unchanged: position t attends to the non-padding
positions <= t only.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor, nn

from bertlab.nn.conditional_layer_norm import ConditionalLayerNorm

__all__ = ["ConditionContext", "ContextLayerNorm", "condition_layer_norms", "causal_attention_mask"]


class ConditionContext:
    """Holds the condition of the forward pass in progress (per thread)."""

    def __init__(self) -> None:
        self._local = threading.local()

    # a copy (deepcopy, pickle) gets a fresh, empty context, still shared by its norms
    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self._local = threading.local()

    @contextlib.contextmanager
    def use(self, cond: Tensor) -> Iterator[Tensor]:
        """Make ``cond`` ([B, cond_dim]) the condition of every forward inside the block."""
        prev = getattr(self._local, "cond", None)
        self._local.cond = cond
        try:
            yield cond
        finally:
            self._local.cond = prev

    def get(self) -> Tensor:
        cond = getattr(self._local, "cond", None)
        if cond is None:
            raise RuntimeError(
                "a conditional LayerNorm ran without a condition: wrap the forward in `with ctx.use(cond):`"
            )
        return cond


class ContextLayerNorm(ConditionalLayerNorm):
    """A ConditionalLayerNorm called like ``nn.LayerNorm`` (one argument); the condition
    comes from its :class:`ConditionContext` (or an explicit ``cond``)."""

    context: ConditionContext

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return super().forward(x, self.context.get() if cond is None else cond)


def condition_layer_norms(
    modules: nn.Module | Iterable[nn.Module],
    cond_dim: int,
    hidden_units: int | None = None,
    act: str | None = None,
    context: ConditionContext | None = None,
) -> ConditionContext:
    """Replace every ``nn.LayerNorm`` in ``modules`` (in place) by a :class:`ContextLayerNorm`
    copied from it; returns the context that feeds them all. A LayerNorm shared by several
    parents (ALBERT's shared block) becomes one shared conditional norm.

    Raises ValueError when no LayerNorm is found (nothing would be conditioned)."""
    ctx = context or ConditionContext()
    mods = [modules] if isinstance(modules, nn.Module) else list(modules)
    replaced: dict[int, ContextLayerNorm] = {}
    for root in mods:
        for parent in list(root.modules()):
            for name, child in list(parent.named_children()):
                if not isinstance(child, nn.LayerNorm) or isinstance(child, ContextLayerNorm):
                    continue
                if id(child) not in replaced:
                    new = ContextLayerNorm.from_layer_norm(child, cond_dim, hidden_units, act)
                    new.context = ctx
                    replaced[id(child)] = new
                setattr(parent, name, replaced[id(child)])
    if not replaced:
        raise ValueError("condition_layer_norms: the modules contain no nn.LayerNorm")
    return ctx


def conditional_norms(modules: nn.Module | Iterable[nn.Module]) -> list[tuple[str, ContextLayerNorm]]:
    """``(name, module)`` of every ContextLayerNorm inside ``modules`` (for tests and reports)."""
    mods = [modules] if isinstance(modules, nn.Module) else list(modules)
    return [(n, m) for root in mods for n, m in root.named_modules() if isinstance(m, ContextLayerNorm)]


def causal_attention_mask(attention_mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Additive mask ``[B, 1, T, T]``: 0 where query t may attend key s (s <= t and s is not
    padding), the dtype's most negative value elsewhere.

    ``attention_mask``: ``[B, T]`` (1/True = real token). HF's BERT-family models pass a
    4-D mask through unchanged (eager adds it to the scores, SDPA uses it as a bias). Rows
    of padding queries keep attending to the real keys before them, so no row is empty as
    long as position 0 is real (right padding)."""
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be [B, T], got shape {tuple(attention_mask.shape)}")
    t = attention_mask.size(1)
    causal = torch.ones(t, t, dtype=torch.bool, device=attention_mask.device).tril()  # shape: [T(query), T(key)]
    allowed = causal[None] & attention_mask.bool()[:, None, :]  # shape: [B, T, T]
    mask = torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]  # shape: [B, 1, T, T]
