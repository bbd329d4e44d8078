"""Tagging heads sharing one interface: ``nll(emissions, tags, mask, reduction)`` and
``decode(emissions, mask, first_tag=None, last_tag=None)``.

The CRF (nn/crf.py) is the research subject, the MEMM (nn/memm.py) bert4keras's cheaper
sibling, and the softmax head the per-token baseline. The head is registered on the task
under its type name, so ``optimizer.lr_multipliers: {crf: 100}`` (or ``{memm: 10}``) works.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bertlab.utils.errors import ConfigError


class SoftmaxHead(nn.Module):
    """Independent per-token softmax over tags (no parameters: the emission layer is shared)."""

    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        # shape: emissions [B,T,K], tags [B,T], mask [B,T]; mean over unmasked tokens
        logp = F.log_softmax(emissions.float(), dim=-1)
        tok = -logp.gather(-1, tags.clamp(0, self.num_tags - 1).unsqueeze(-1)).squeeze(-1) * mask
        if reduction == "mean":
            return tok.sum() / mask.sum().clamp(min=1)
        if reduction == "sum":
            return tok.sum()
        if reduction == "none":
            return tok.sum(-1)
        raise ValueError(f"unknown reduction {reduction!r}")

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor, first_tag: int | None = None, last_tag: int | None = None) -> torch.Tensor:
        tags = emissions.argmax(-1)
        if first_tag is not None:
            tags[:, 0] = first_tag
        if last_tag is not None:
            last = mask.long().sum(-1) - 1
            tags[torch.arange(tags.size(0)), last] = last_tag
        return tags.masked_fill(~mask, -1)


HEADS = ("crf", "memm", "softmax")


def build_tagging_head(cfg: Mapping[str, Any], num_tags: int) -> tuple[str, nn.Module]:
    """``(name, module)``; the name is the attribute the task registers it under (lr multiplier pattern)."""
    kind = cfg.get("type")
    if kind not in HEADS:
        raise ConfigError("head.type", f"unknown head {kind!r}; choose one of {sorted(HEADS)}")
    if kind == "crf":
        from bertlab.nn.crf import CRF

        return kind, CRF(num_tags, include_start_end=bool(cfg.get("include_start_end", False)))
    if kind == "memm":
        from bertlab.nn.memm import MEMM

        return kind, MEMM(num_tags)
    return kind, SoftmaxHead(num_tags)
