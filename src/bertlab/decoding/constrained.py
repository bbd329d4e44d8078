"""Non-autoregressive MLM answer decoding with a passage n-gram constraint, and voting.

The model fills M [MASK] slots at once; ``probs[k]`` is the distribution of slot k over the
vocab. Decoding one passage (Su Jianlin's ``gen_answer``):

- at slot k, with the prefix a_1..a_{k} chosen so far, the ALLOWED tokens are the tokens t
  such that a_1..a_k t is an n-gram of the passage (a contiguous token run), plus the end
  token [SEP]; every other token's probability is set to zero;
- take the argmax among the allowed tokens (probabilities NOT renormalised); stop after
  [SEP] (or after M slots);
- the passage's score is the mean of the chosen probabilities, the final [SEP] included.

Across the passages of one question, each distinct non-empty answer a collects the scores
v of the passages that gave it and gets ``sum(v^2) / (sum(v) + 1)``; the highest wins.
Empty answers (the passage said [SEP] first) do not vote; no votes means "no answer".

``argmax_decode`` is the unconstrained ablation (plain argmax per slot, stop at [SEP]).
``PrefixConstraint`` is the step-wise form used by the autoregressive baseline, which
fills one slot per forward pass under the same rule.

Pure torch/Python; shapes are noted as ``# shape:``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class PassageAnswer:
    """The decoded answer of one passage."""

    #: answer token ids, the end token excluded
    tokens: list[int]
    #: the probability of every chosen token, the end token's included when it was chosen
    probs: list[float] = field(default_factory=list)
    #: token index in the passage where the answer occurs (first occurrence); -1 if empty
    #: or (unconstrained decoding) not a passage n-gram
    start: int = -1

    @property
    def score(self) -> float:
        return sum(self.probs) / len(self.probs) if self.probs else 0.0


class PrefixConstraint:
    """Which tokens continue the current prefix as an n-gram of ``passage`` (plus ``end_id``).

    Keeps the start positions i whose run passage[i : i+k] equals the prefix of length k, so
    each step costs O(number of surviving starts).
    """

    def __init__(self, passage: Sequence[int], end_id: int):
        self.passage = list(passage)
        self.end_id = end_id
        self.starts = list(range(len(self.passage)))
        self.length = 0
        self.done = False

    def allowed(self) -> list[int]:
        """Sorted allowed token ids for the next slot (always includes ``end_id``)."""
        k, p = self.length, self.passage
        ids = {p[i + k] for i in self.starts if i + k < len(p)}
        ids.add(self.end_id)
        return sorted(ids)

    def push(self, token: int) -> None:
        if self.done:
            raise RuntimeError("push after the end token")
        if token == self.end_id:
            self.done = True
            return
        k, p = self.length, self.passage
        self.starts = [i for i in self.starts if i + k < len(p) and p[i + k] == token]
        if not self.starts:
            raise ValueError(f"token {token} does not continue the prefix as a passage n-gram")
        self.length += 1

    @property
    def first_start(self) -> int:
        return self.starts[0] if self.length and self.starts else -1

    def choose(self, probs: torch.Tensor) -> tuple[int, float]:
        """Argmax over the allowed tokens of one slot's ``probs`` (shape: [V]); ties -> lowest id."""
        ids = self.allowed()
        sub = probs[torch.as_tensor(ids, dtype=torch.long, device=probs.device)]
        j = int(torch.argmax(sub))
        return ids[j], float(sub[j])


def constrained_decode(probs: torch.Tensor, passage: Sequence[int], end_id: int) -> PassageAnswer:
    """Greedy constrained decoding of one passage. probs shape: [M, V] (probabilities)."""
    state = PrefixConstraint(passage, end_id)
    tokens: list[int] = []
    chosen: list[float] = []
    for k in range(probs.size(0)):
        tok, p = state.choose(probs[k])
        chosen.append(p)
        state.push(tok)
        if tok == end_id:
            break
        tokens.append(tok)
    return PassageAnswer(tokens, chosen, state.first_start)


def find_run(passage: Sequence[int], tokens: Sequence[int]) -> int:
    """First index where ``tokens`` occurs contiguously in ``passage``; -1 if nowhere or empty."""
    n = len(tokens)
    if n == 0:
        return -1
    first = tokens[0]
    for i in range(len(passage) - n + 1):
        if passage[i] == first and list(passage[i : i + n]) == list(tokens):
            return i
    return -1


def argmax_decode(probs: torch.Tensor, end_id: int, passage: Sequence[int] | None = None) -> PassageAnswer:
    """Unconstrained ablation: argmax per slot, stop at ``end_id``. probs shape: [M, V]."""
    top_p, top_i = probs.max(dim=-1)  # shape: [M]
    tokens: list[int] = []
    chosen: list[float] = []
    for tok, p in zip(top_i.tolist(), top_p.tolist()):
        chosen.append(p)
        if tok == end_id:
            break
        tokens.append(tok)
    start = find_run(passage, tokens) if passage is not None else -1
    return PassageAnswer(tokens, chosen, start)


def decode_batch(
    probs: torch.Tensor, passages: Sequence[Sequence[int]], end_id: int, constrained: bool = True
) -> list[PassageAnswer]:
    """Decode every row of a batch. probs shape: [B, M, V]; passages: B token-id lists."""
    probs = probs.detach().float().cpu()
    if constrained:
        return [constrained_decode(probs[b], passages[b], end_id) for b in range(probs.size(0))]
    return [argmax_decode(probs[b], end_id, passages[b]) for b in range(probs.size(0))]


def vote(candidates: Iterable[tuple[Hashable, float]]) -> dict[Hashable, float]:
    """Per distinct answer key: sum(v^2) / (sum(v) + 1) over the passage scores v it got.

    Empty keys (``()``, ``""`` or ``None``) do not vote."""
    acc: dict[Hashable, list[float]] = {}
    for key, v in candidates:
        if key in ((), "", None):
            continue
        acc.setdefault(key, []).append(float(v))
    return {k: sum(x * x for x in vs) / (sum(vs) + 1.0) for k, vs in acc.items()}


def best_answer(candidates: Iterable[tuple[Hashable, float]]) -> tuple[Hashable | None, float]:
    """The winning key and its vote score; (None, 0.0) when every passage gave the empty answer.
    Ties go to the answer that appeared first."""
    votes = vote(candidates)
    if not votes:
        return None, 0.0
    key = max(votes, key=votes.__getitem__)  # max keeps the first of equal values
    return key, votes[key]
