"""Post 6's seq2seq decoder: ONE answer for all passages of a question, decoded jointly
(bert4keras ``examples/task_reading_comprehension_by_seq2seq.py``, ``ReadingComprehension``
on ``AutoRegressiveDecoder.beam_search``, early 2020).

Every step, the next-token distribution p_j of every live passage j is computed for every
answer prefix in the beam (``next_probs``; the model sees ``passage [SEP] question [SEP]``
then the prefix), and:

- step 0 only: a passage whose most probable first token is the end token has "no answer"
  and is dropped for the rest of the question; when every passage is dropped the answer is
  empty;
- ``extractive`` (the example's ``mode='extractive'``): a token keeps its probability (in
  every passage's p_j) only if prefix + token is an n-gram of ANY live passage, or it is the
  end token; every other probability becomes 0 (not renormalised);
- the passages are combined per token by ``sum_j p_j^2 / (sum_j p_j + 1)``;
- the step score is ``log(combined + 1e-6)`` (so a masked token scores log(1e-6), not -inf, as
  in the example: a model whose allowed tokens all combine below 1e-6, i.e. an untrained one,
  can pick a masked token), added to the prefix's score; the ``topk``
  highest (prefix, token) pairs are kept (``topk`` = the beam size, 1 in the example's
  ``answer``); when the best of them ends with the end token it is the answer; otherwise the
  finished ones are dropped and the beam shrinks by as many; after ``max_len`` steps the best
  unfinished prefix is the answer.

:func:`joint_decode` is the loop with the model behind ``next_probs``; :func:`joint_step` is
one step's arithmetic (pure torch), unit-tested against a hand computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from bertlab.decoding.substring import PassageNgrams

#: the example's floor inside the log of the combined probability
EPS = 1e-6

#: next_probs(live passages, prefixes, parents) -> probabilities [len(live), len(prefixes), V];
#: parents[b] is the index of prefix b's parent among the previous call's prefixes (None at step 0)
NextProbs = Callable[[list[int], list[list[int]], "list[int] | None"], Tensor]


@dataclass
class JointAnswer:
    #: answer token ids, the end token excluded; [] = no answer
    tokens: list[int]
    #: accumulated score (sum of log(combined + 1e-6) over the steps, the end's included)
    score: float
    #: the passages still live after step 0 (the ones that did not say "no answer")
    live: list[int]
    #: steps decoded (model calls) = the answer's length, its end token included when it ended
    steps: int


def combine(probs: Tensor) -> Tensor:
    """``sum_j p_j^2 / (sum_j p_j + 1)`` over dim 0 (the passages). probs shape: [J, ...]."""
    return (probs * probs).sum(0) / (probs.sum(0) + 1.0)


def extractive_mask(prefixes: Sequence[Sequence[int]], ngrams: Sequence[PassageNgrams], vocab: int) -> Tensor:
    """``[len(prefixes), vocab]`` bool: the tokens that continue each prefix as an n-gram of any
    of ``ngrams``' passages, and the end token."""
    keep = torch.zeros(len(prefixes), vocab, dtype=torch.bool)
    for b, prefix in enumerate(prefixes):
        allowed: set[int] = set()
        for ng in ngrams:
            allowed.update(ng.allowed(prefix))
        keep[b, sorted(allowed)] = True
    return keep


def joint_step(
    probs: Tensor,
    prefixes: Sequence[Sequence[int]],
    ngrams: Sequence[PassageNgrams] | None,
) -> Tensor:
    """One step's per-prefix token scores ``log(combine(masked probs) + 1e-6)``, shape
    ``[len(prefixes), V]``, from the live passages' probabilities ``probs`` ``[J, B, V]``;
    ``ngrams`` (the live passages' n-grams) applies the extractive mask, None does not."""
    if ngrams is not None:
        probs = probs * extractive_mask(prefixes, ngrams, probs.size(-1)).to(probs.device)[None]
    return torch.log(combine(probs.float()) + EPS)


def joint_decode(
    next_probs: NextProbs,
    passages: Sequence[Sequence[int]],
    end_id: int,
    max_len: int,
    topk: int = 1,
    extractive: bool = True,
) -> JointAnswer:
    """The answer of one question from its ``passages`` (token ids, for the extractive mask)."""
    live = list(range(len(passages)))
    ngrams_all = [PassageNgrams(p, end_id) for p in passages] if extractive else None
    prefixes: list[list[int]] = [[]]
    scores = torch.zeros(1)
    parents: list[int] | None = None
    steps = 0
    for step in range(max_len):
        probs = next_probs(live, prefixes, parents).float().cpu()  # shape: [J, B, V]
        steps += 1
        if step == 0:
            keep = probs[:, 0].argmax(-1) != end_id
            if not bool(keep.any()):
                return JointAnswer([], 0.0, [], steps)
            live = [j for j, k in zip(live, keep.tolist()) if k]
            probs = probs[keep]
        ngrams = [ngrams_all[j] for j in live] if ngrams_all is not None else None
        total = scores[:, None] + joint_step(probs, prefixes, ngrams)  # shape: [B, V]
        width = total.size(1)
        k = min(topk, total.numel())
        best = torch.topk(total.flatten(), k)  # sorted: best first
        rows = (best.indices // width).tolist()
        toks = (best.indices % width).tolist()
        if toks[0] == end_id:
            return JointAnswer(prefixes[rows[0]], float(best.values[0]), live, steps)
        open_ = [i for i, t in enumerate(toks) if t != end_id]
        parents = [rows[i] for i in open_]
        prefixes = [prefixes[rows[i]] + [toks[i]] for i in open_]
        scores = best.values[open_]
        topk = len(open_)
    b = int(scores.argmax())
    return JointAnswer(prefixes[b], float(scores[b]), live, steps)


def mean_score(answer: JointAnswer) -> float:
    """exp(mean step score) of a decoded answer (the end token counted as a step when it was
    chosen); 0.0 for the empty answer."""
    if not answer.tokens:
        return 0.0
    return math.exp(answer.score / answer.steps)  # one step per token of the path, the end's included
