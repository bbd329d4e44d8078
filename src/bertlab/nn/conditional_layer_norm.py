"""Conditional LayerNorm (Su Jianlin, kexue.fm 7124; used by triple extraction and
conditional generation).

    CLN(x, c) = LN(x) * (gamma + W_g c') + (beta + W_b c'),   c' = act(W_h c) or c

``W_g`` and ``W_b`` have no bias and start at ZERO, so a fresh CLN computes exactly the
plain LayerNorm with the same ``gamma``/``beta`` (for any condition): a pretrained model
whose LayerNorms are replaced by CLNs (``from_layer_norm``) starts out unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConditionalLayerNorm"]

_ACTS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "relu": F.relu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
    "swish": F.silu,
}


_CLN = TypeVar("_CLN", bound="ConditionalLayerNorm")


class ConditionalLayerNorm(nn.Module):
    """LayerNorm over the last dimension whose scale and shift depend on a condition.

    Args:
        hidden: size of the normalised (last) dimension of ``x``.
        cond_dim: size of the condition vector.
        hidden_units: optional bottleneck ``c -> Dense(hidden_units, act)`` before the two
            projections (bert4keras' ``hidden_units``); None feeds ``c`` directly.
        act: activation of the bottleneck (``linear``, ``relu``, ``gelu``, ``tanh``,
            ``swish``); None means linear.
        eps: the LayerNorm epsilon (BERT's 1e-12).

    Shapes: ``x`` ``[B, ..., hidden]``; ``cond`` ``[B, cond_dim]`` (broadcast over the
    middle dimensions of ``x``) or ``[B, ..., cond_dim]`` matching ``x``.
    """

    def __init__(
        self, hidden: int, cond_dim: int, hidden_units: int | None = None, act: str | None = None, eps: float = 1e-12
    ):
        super().__init__()
        if act is not None and act not in _ACTS:
            raise ValueError(f"act must be one of {sorted(_ACTS)} or None, got {act!r}")
        self.hidden, self.cond_dim, self.eps = hidden, cond_dim, eps
        self.act_name = act or "linear"
        self.weight = nn.Parameter(torch.ones(hidden))  # gamma
        self.bias = nn.Parameter(torch.zeros(hidden))  # beta
        self.cond_proj = nn.Linear(cond_dim, hidden_units) if hidden_units else None
        inner = hidden_units or cond_dim
        self.gamma_dense = nn.Linear(inner, hidden, bias=False)
        self.beta_dense = nn.Linear(inner, hidden, bias=False)
        nn.init.zeros_(self.gamma_dense.weight)
        nn.init.zeros_(self.beta_dense.weight)

    @classmethod
    def from_layer_norm(
        cls: type[_CLN], ln: nn.LayerNorm, cond_dim: int, hidden_units: int | None = None, act: str | None = None
    ) -> _CLN:
        """A CLN carrying ``ln``'s gamma, beta and eps (so it starts identical to ``ln``)."""
        (hidden,) = ln.normalized_shape
        cln = cls(hidden, cond_dim, hidden_units, act, eps=ln.eps)
        with torch.no_grad():
            if ln.weight is not None:
                cln.weight.copy_(ln.weight)
            if ln.bias is not None:
                cln.bias.copy_(ln.bias)
        return cln.to(device=ln.weight.device if ln.weight is not None else None)

    def extra_repr(self) -> str:
        bottleneck = f", hidden_units={self.cond_proj.out_features}, act={self.act_name}" if self.cond_proj else ""
        return f"{self.hidden}, cond_dim={self.cond_dim}{bottleneck}, eps={self.eps}"

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        if cond.shape[-1] != self.cond_dim:
            raise ValueError(f"cond has last dimension {cond.shape[-1]}, expected cond_dim={self.cond_dim}")
        c = cond
        if self.cond_proj is not None:
            c = _ACTS[self.act_name](self.cond_proj(c))
        while c.dim() < x.dim():  # [B, C] -> [B, 1, ..., C]
            c = c.unsqueeze(-2)
        gamma = self.weight + self.gamma_dense(c)
        beta = self.bias + self.beta_dense(c)
        normed = F.layer_norm(x, (self.hidden,), eps=self.eps)
        return normed * gamma + beta
