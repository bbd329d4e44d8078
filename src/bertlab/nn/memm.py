"""Bidirectional maximum-entropy Markov model (MEMM), bert4keras semantics.

bert4keras' ``MaximumEntropyMarkovModel`` (Su Jianlin, "CRF用过了，不妨再了解下更快的MEMM？",
2020) replaces the CRF's global normalisation by a local one: with emissions ``e_t`` and a
transition matrix ``trans[from, to]``, the forward direction predicts each tag from the
previous gold tag,

    p_fwd(y_t | y_{t-1}) = softmax((e_t + trans[y_{t-1}, :]) / 2)[y_t]    (t >= 1)
    p_fwd(y_0)           = softmax(e_0)[y_0]

and the backward direction does the same on the reversed sequence with the transposed
matrix,

    p_bwd(y_t | y_{t+1}) = softmax((e_t + trans[:, y_{t+1}]) / 2)[y_t]    (t < last)
    p_bwd(y_last)        = softmax(e_last)[y_last].

The loss is the mean of the two directions' token cross-entropies (each a masked mean over
the tokens of the batch). Training needs no recursion over time, hence "faster than a CRF".

Decoding maximises the bidirectional log-likelihood of the path,

    log p_fwd(y) + log p_bwd(y) = log softmax(e_0)[y_0] + log softmax(e_last)[y_last]
        + sum_{t>=1} [ log softmax_j((e_t + trans[y_{t-1}, j]) / 2)[y_t]
                       + log softmax_i((e_{t-1} + trans[i, y_t]) / 2)[y_{t-1}] ],

a sum of unary and pairwise terms, by exact Viterbi (vectorised over the batch and over
tag pairs; a loop over time).

Masks: as in :mod:`bertlab.nn.crf`, steps where ``mask`` is False are skipped (the chain runs
from the previous unmasked step to the next one); any mask is first compacted to a prefix
mask. bert4keras' optional low-rank transitions (``hidden_dim``) are not implemented.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertlab.nn.crf import _compact, check_forced_tags, check_inputs, check_tags
from bertlab.nn.losses import float32

__all__ = ["MEMM"]

_REDUCTIONS = ("mean", "sum", "none")


class MEMM(nn.Module):
    """Bidirectional MEMM head over ``num_tags`` tags, with the CRF head's interface.

    Attributes:
        transitions: ``[K, K]`` parameter, ``transitions[from, to]``; glorot-uniform init.
    """

    def __init__(self, num_tags: int):
        super().__init__()
        if not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"num_tags must be a positive int, got {num_tags!r}")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Keras' glorot_uniform, the initializer of bert4keras' MEMM ``trans``.
        bound = math.sqrt(6.0 / (2 * self.num_tags))
        nn.init.uniform_(self.transitions, -bound, bound)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}"

    # ------------------------------------------------------------------ training
    @float32
    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor, reduction: str = "mean") -> Tensor:
        """bert4keras' MEMM loss: mean of the forward and backward token cross-entropies.

        Args:
            emissions: ``[B, T, K]`` float scores.
            tags: ``[B, T]`` integer gold tags; only unmasked positions are read.
            mask: ``[B, T]`` bool (or 0/1 integer); ``mask[:, 0]`` must be all True.
            reduction: "mean" (over the unmasked tokens of the batch, as bert4keras),
                "sum" (over tokens) or "none" (per-sequence sums, ``[B]``).

        The per-token loss is ``(ce_fwd + ce_bwd) / 2``, so "mean" = "sum" / tokens.
        """
        if reduction not in _REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; choose one of {_REDUCTIONS}")
        emissions, mask = self._check(emissions, mask)
        tags = check_tags(tags, mask, self.num_tags)

        em, cmask, lengths, order = _compact(emissions, mask)
        if order is not None:
            tags = tags.gather(1, order)
        tags = tags[:, : em.shape[1]].masked_fill(~cmask, 0)  # shape: [B, T]
        em = em.masked_fill(~cmask[..., None], 0.0)
        trans = self.transitions.to(em.dtype)
        B, T, K = em.shape
        is_last = torch.arange(T, device=em.device) == (lengths - 1)[:, None]  # shape: [B, T]

        fwd = em.clone()
        bwd = em.clone()
        if T > 1:
            fwd[:, 1:] = (em[:, 1:] + trans[tags[:, :-1]]) / 2  # trans[y_{t-1}, :]
            inner = (em[:, :-1] + trans.T[tags[:, 1:]]) / 2  # trans[:, y_{t+1}]
            bwd[:, :-1] = torch.where(is_last[:, :-1, None], em[:, :-1], inner)
        y = tags[..., None]
        ce_f = -F.log_softmax(fwd, -1).gather(-1, y)[..., 0]
        ce_b = -F.log_softmax(bwd, -1).gather(-1, y)[..., 0]
        tok = ((ce_f + ce_b) / 2).masked_fill(~cmask, 0.0)  # shape: [B, T]
        if reduction == "mean":
            return tok.sum() / cmask.sum()
        if reduction == "sum":
            return tok.sum()
        return tok.sum(1)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def log_likelihood(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Bidirectional log-likelihood ``log p_fwd(y) + log p_bwd(y)`` per sequence, ``[B]``.

        What :meth:`decode` maximises; equals ``-2 * nll(..., reduction="none")``.
        """
        return -2.0 * self.nll(emissions, tags, mask, reduction="none")

    @torch.no_grad()
    @float32
    def decode(
        self, emissions: Tensor, mask: Tensor, first_tag: int | None = None, last_tag: int | None = None
    ) -> Tensor:
        """Exact Viterbi over the bidirectional log-likelihood of the path.

        Args:
            emissions: ``[B, T, K]`` float scores.
            mask: ``[B, T]`` bool (or 0/1 integer); ``mask[:, 0]`` must be all True.
            first_tag: if given, the tag forced at position 0.
            last_tag: if given, the tag forced at the last unmasked position of every row
                (except one-step rows when it conflicts with ``first_tag``: first_tag wins).

        Returns:
            ``[B, T]`` long tensor of tags, -1 where ``mask`` is False.
        """
        emissions, mask = self._check(emissions, mask)
        K = self.num_tags
        check_forced_tags(first_tag, last_tag, K)
        B, T0, _ = emissions.shape
        em, cmask, lengths, order = _compact(emissions.detach(), mask)
        em = em.masked_fill(~cmask[..., None], 0.0)
        trans = self.transitions.detach().to(em.dtype)
        T = em.shape[1]
        rows = torch.arange(B, device=em.device)

        score = F.log_softmax(em[:, 0], -1)  # forward unary of step 0; shape: [B, K]
        if first_tag is not None:
            score = score + _forced(first_tag, K, em)
        keep = torch.arange(K, device=em.device).expand(B, K)
        pointers = []
        for t in range(1, T):
            # pairwise term of (y_{t-1} = i, y_t = j); shape: [B, K, K]
            pair = F.log_softmax((em[:, t, None, :] + trans) / 2, -1) + F.log_softmax(
                (em[:, t - 1, :, None] + trans) / 2, -2
            )
            best, arg = (score[:, :, None] + pair).max(1)
            live = (t < lengths)[:, None]
            score = torch.where(live, best, score)
            pointers.append(torch.where(live, arg, keep))  # padding steps point to themselves
        score = score + F.log_softmax(em[rows, lengths - 1], -1)  # backward unary of the last step
        if last_tag is not None:
            forced_last = _forced(last_tag, K, em)
            if first_tag is not None and first_tag != last_tag:
                forced_last = torch.where((lengths == 1)[:, None], torch.zeros_like(forced_last), forced_last)
            score = score + forced_last
        tag = score.argmax(-1)  # shape: [B]
        path = [tag]
        for ptr in reversed(pointers):
            tag = ptr.gather(1, tag[:, None])[:, 0]
            path.append(tag)
        path_t = torch.stack(path[::-1], 1).masked_fill_(~cmask, -1)  # shape: [B, T]

        out = path_t.new_full((B, T0), -1)
        if order is None:
            out[:, :T] = path_t
        else:
            out.scatter_(1, order[:, :T], path_t)
        return out

    # ------------------------------------------------------------------ helpers
    def _check(self, emissions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        return check_inputs(emissions, mask, self.num_tags, self.transitions.dtype)


def _forced(tag: int, K: int, like: Tensor) -> Tensor:
    """``[K]`` vector: 0 at ``tag``, -inf elsewhere."""
    v = like.new_full((K,), -math.inf)
    v[tag] = 0.0
    return v
