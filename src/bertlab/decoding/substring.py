"""The passage n-gram constraint of the seq2seq reader (post 6's seq2seq example, mode
``extractive``): the answer generated token by token must be a contiguous run of the passage.

:class:`PassageNgrams` answers, for any prefix a_1..a_k already generated, which tokens t make
a_1..a_k t a run of the passage; the end token is always allowed. It keeps, per prefix, the
start positions whose run equals it (found from the parent prefix's starts, cached), so a
step costs O(surviving starts). Unlike :class:`bertlab.decoding.constrained.PrefixConstraint`
(one left-to-right path), it serves any prefix, as beam search needs: the beams of one passage
hold different prefixes and are reordered at every step.

:func:`constrain_logprobs` applies it to a batch of next-token log-probabilities: the
disallowed tokens get -inf, the allowed ones keep their log-probability (NOT renormalised, as
the example zeroes the other probabilities), so scores stay the model's own probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


class PassageNgrams:
    def __init__(self, passage: Sequence[int], end_id: int):
        self.passage = list(passage)
        self.end_id = end_id
        #: prefix -> (start positions of its runs, allowed next ids)
        self._cache: dict[tuple[int, ...], tuple[list[int], list[int]]] = {}

    def _starts(self, prefix: tuple[int, ...]) -> list[int]:
        got = self._cache.get(prefix)
        if got is not None:
            return got[0]
        p, k = self.passage, len(prefix)
        if k == 0:
            starts = list(range(len(p)))
        else:
            last = prefix[-1]
            starts = [i for i in self._starts(prefix[:-1]) if i + k - 1 < len(p) and p[i + k - 1] == last]
        allowed = sorted({p[i + k] for i in starts if i + k < len(p)} | {self.end_id})
        self._cache[prefix] = (starts, allowed)
        return starts

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """Sorted ids that may follow ``prefix`` (always the end id; only it when ``prefix``
        is not a run of the passage)."""
        key = tuple(int(t) for t in prefix)
        self._starts(key)
        return self._cache[key][1]

    def is_run(self, tokens: Sequence[int]) -> bool:
        """Whether ``tokens`` (non-empty) is a contiguous run of the passage."""
        return bool(tokens) and bool(self._starts(tuple(int(t) for t in tokens)))


def constrain_logprobs(logp: Tensor, prefixes: Tensor, constraints: Sequence[PassageNgrams]) -> Tensor:
    """``logp`` ``[N, V]`` with every token that does not continue row n's prefix
    (``prefixes[n]``, shape ``[N, t]``) as a run of ``constraints[n]``'s passage set to -inf."""
    keep = torch.zeros(logp.shape, dtype=torch.bool)
    for n, (prefix, c) in enumerate(zip(prefixes.tolist(), constraints)):
        keep[n, c.allowed(prefix)] = True
    return logp.masked_fill(~keep.to(logp.device), -math.inf)
