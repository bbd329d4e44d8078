"""Tagging heads sharing one interface: ``nll(emissions, tags, mask, reduction)`` and
``decode(emissions, mask, first_tag=None, last_tag=None)``.

The CRF (nn/crf.py) is the research subject, the MEMM (nn/memm.py) bert4keras's cheaper
sibling, and the softmax head the per-token baseline. The head is registered on the task
under its type name, so ``optimizer.lr_multipliers: {crf: 100}`` (or ``{memm: 10}``) works.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from bertlab.nn.losses import float32
from bertlab.utils.errors import ConfigError


class TaggingHead(Protocol):
    """The interface every tagging head has (SoftmaxHead, TorchCrfHead, nn/crf.CRF, nn/memm.MEMM)."""

    def nll(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        """Negative log-likelihood of the gold ``tags`` (``[B, T]``) given ``emissions`` ``[B, T, K]``."""
        ...

    def decode(
        self, emissions: torch.Tensor, mask: torch.Tensor, first_tag: int | None = None, last_tag: int | None = None
    ) -> torch.Tensor:
        """The best tag path ``[B, T]`` of each sequence (-1 on padding)."""
        ...


class SoftmaxHead(nn.Module):
    """Independent per-token softmax over tags (no parameters: the emission layer is shared)."""

    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags

    @float32
    def nll(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
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

    @float32
    def decode(
        self, emissions: torch.Tensor, mask: torch.Tensor, first_tag: int | None = None, last_tag: int | None = None
    ) -> torch.Tensor:
        tags = emissions.argmax(-1)
        if first_tag is not None:
            tags[:, 0] = first_tag
        if last_tag is not None:
            last = mask.long().sum(-1) - 1
            tags[torch.arange(tags.size(0)), last] = last_tag
        return tags.masked_fill(~mask, -1)


class TorchCrfHead(nn.Module):
    """pytorch-crf 0.7.2 behind the same interface: the naive reference of the speed issue
    (``head.type=torchcrf``, with the transitions only, as bert4keras). pytorch-crf is a dev
    dependency; it loops over time in Python (bench: scripts/bench_crf.py)."""

    def __init__(self, num_tags: int, include_start_end: bool = False):
        super().__init__()
        try:
            from torchcrf import CRF as TorchCRF
        except ImportError as err:
            raise ConfigError("head.type", "torchcrf needs pytorch-crf: pip install -e '.[dev]'") from err
        self.num_tags = num_tags
        self.include_start_end = include_start_end
        self.crf = TorchCRF(num_tags, batch_first=True)
        if not include_start_end:  # bert4keras's CRF: transitions only, start/end fixed at zero
            for p in (self.crf.start_transitions, self.crf.end_transitions):
                p.requires_grad_(False)
                nn.init.zeros_(p)

    @property
    def transitions(self) -> nn.Parameter:
        return self.crf.transitions

    @float32
    def nll(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        llh = self.crf(emissions.float(), tags.clamp(0, self.num_tags - 1), mask.bool(), reduction="none")
        if reduction == "mean":  # over sequences, as bertlab's CRF
            return -llh.mean()
        if reduction == "sum":
            return -llh.sum()
        if reduction == "none":
            return -llh
        raise ValueError(f"unknown reduction {reduction!r}")

    @float32
    def decode(
        self, emissions: torch.Tensor, mask: torch.Tensor, first_tag: int | None = None, last_tag: int | None = None
    ) -> torch.Tensor:
        mask = mask.bool()
        emissions = emissions.float()
        if first_tag is not None or last_tag is not None:  # forced tags: every other tag loses by far
            emissions = emissions.clone()
            rows = torch.arange(emissions.shape[0], device=emissions.device)
            last = mask.long().sum(-1) - 1
            for pos, tag in ((last, last_tag), (torch.zeros_like(last), first_tag)):  # first wins a 1-step row
                if tag is not None:
                    keep = emissions[rows, pos, tag]
                    emissions[rows, pos] = -1e4
                    emissions[rows, pos, tag] = keep
        out = torch.full(mask.shape, -1, dtype=torch.long, device=emissions.device)
        for b, path in enumerate(self.crf.decode(emissions, mask)):
            out[b, mask[b]] = torch.as_tensor(path, device=out.device)
        return out


HEADS = ("crf", "memm", "softmax", "torchcrf")


def build_tagging_head(cfg: Mapping[str, Any], num_tags: int) -> tuple[str, nn.Module]:
    """``(name, module)``; the name is the attribute the task registers it under (lr multiplier pattern)."""
    kind = cfg.get("type")
    if kind not in HEADS:
        raise ConfigError("head.type", f"unknown head {kind!r}; choose one of {sorted(HEADS)}")
    if kind == "crf":
        from bertlab.nn.crf import CRF

        return kind, CRF(num_tags, include_start_end=bool(cfg.get("include_start_end", False)))
    if kind == "torchcrf":  # registered as "crf": the same lr multiplier key and heatmaps
        return "crf", TorchCrfHead(num_tags, include_start_end=bool(cfg.get("include_start_end", False)))
    if kind == "memm":
        from bertlab.nn.memm import MEMM

        return kind, MEMM(num_tags)
    return kind, SoftmaxHead(num_tags)
